// Preloaded (--import) by bench/v8-flags-ab.ts into each keyvalet it compares: puts the V8 flags in
// AB_V8_FLAGS in force at start (those NODE_OPTIONS does not accept, e.g. --heap-growing-percent).
import v8 from 'node:v8'

if (process.env.AB_V8_FLAGS) v8.setFlagsFromString(process.env.AB_V8_FLAGS)
