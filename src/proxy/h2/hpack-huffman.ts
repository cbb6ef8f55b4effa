/**
 * HPACK's Huffman code (RFC 7541 §5.2, Appendix B), decoding only. The code is canonical: the
 * RFC's codes are what assigning codes in order of bit length, then of symbol, gives. So the table
 * is kept as each symbol's bit length (Appendix B's "len" column, symbols 0-255 and EOS = 256), and
 * the codes are derived from it.
 */
const BIT_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
]

const EOS = 256
const MAX_BITS = 30

/** Per bit length: the first code of that length, how many codes have it, where their symbols begin in SYMBOLS. */
const FIRST = new Int32Array(MAX_BITS + 1)
const COUNT = new Int32Array(MAX_BITS + 1)
const OFFSET = new Int32Array(MAX_BITS + 1)
const SYMBOLS = new Uint16Array(BIT_LENGTHS.length)
{
  const bySymbol = BIT_LENGTHS.map((bits, symbol) => ({ bits, symbol })).sort((a, b) => a.bits - b.bits || a.symbol - b.symbol)
  let code = 0
  let bits = 0
  bySymbol.forEach((entry, i) => {
    code = i === 0 ? 0 : (code + 1) << (entry.bits - bits)
    bits = entry.bits
    if (COUNT[bits] === 0) {
      FIRST[bits] = code
      OFFSET[bits] = i
    }
    COUNT[bits] = (COUNT[bits] ?? 0) + 1
    SYMBOLS[i] = entry.symbol
  })
}

export class HuffmanError extends Error {}

/**
 * Decodes `input[start, end)`. Throws HuffmanError where RFC 7541 §5.2 makes it a decoding error:
 * the EOS symbol in the string, or padding longer than 7 bits or not the most significant bits of EOS (all ones).
 */
export function huffmanDecode(input: Buffer, start: number, end: number): Buffer {
  // The shortest code is 5 bits: at most 8 symbols for every 5 bytes.
  const out = Buffer.allocUnsafe(Math.ceil(((end - start) * 8) / 5))
  let written = 0
  let code = 0
  let bits = 0
  for (let i = start; i < end; i++) {
    const byte = input[i] as number
    for (let shift = 7; shift >= 0; shift--) {
      code = (code << 1) | ((byte >> shift) & 1)
      bits++
      const index = code - (FIRST[bits] as number)
      if (index < 0 || index >= (COUNT[bits] as number)) continue
      const symbol = SYMBOLS[(OFFSET[bits] as number) + index] as number
      if (symbol === EOS) throw new HuffmanError('EOS in a Huffman-coded string')
      out[written++] = symbol
      code = 0
      bits = 0
    }
  }
  if (bits > 7) throw new HuffmanError('Huffman padding longer than 7 bits')
  if (code !== (1 << bits) - 1) throw new HuffmanError('Huffman padding is not all ones')
  return out.subarray(0, written)
}
