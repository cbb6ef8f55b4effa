/** Preload (`--import`): prints `glibc-tunables=<GLIBC_TUNABLES as the process got it>` on stderr. The process then goes on. */
process.stderr.write(`glibc-tunables=${process.env.GLIBC_TUNABLES ?? ''}\n`)
