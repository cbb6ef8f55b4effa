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

/**
 * The code as a decoding automaton that takes four bits at a time. Its states are the inner nodes
 * of the code's tree (0: the root); a leaf reached emits its symbol and goes back to the root. No
 * code is shorter than 5 bits, so four bits emit at most one symbol. STEP[state * 16 + bits] is
 * the next state, the symbol emitted (NO_SYMBOL: none) and whether EOS was reached.
 * ONES[state] is how many one bits lead from the root to the state along the all-ones path
 * (EOS's first bits), -1 off it: where a string may end (RFC 7541 §5.2 padding).
 */
const NO_SYMBOL = 0x1ff
const EOS_REACHED = 1 << 30
const STEP: Int32Array = new Int32Array(256 * 16)
const ONES: Int8Array = new Int8Array(256).fill(-1)
{
  // Inner nodes' children by the next bit: another inner node (> 0), or a leaf (-1 - symbol).
  const zero = new Int32Array(256)
  const one = new Int32Array(256)
  let inner = 1
  for (let bits = 1; bits <= MAX_BITS; bits++) {
    for (let i = 0; i < (COUNT[bits] as number); i++) {
      const code = (FIRST[bits] as number) + i
      let node = 0
      for (let b = bits - 1; b > 0; b--) {
        const branch = ((code >> b) & 1) === 0 ? zero : one
        if (branch[node] === 0) branch[node] = inner++
        node = branch[node] as number
      }
      ;((code & 1) === 0 ? zero : one)[node] = -1 - (SYMBOLS[(OFFSET[bits] as number) + i] as number)
    }
  }
  for (let node = 0, depth = 0; depth <= 7; depth++, node = one[node] as number) ONES[node] = depth
  for (let state = 0; state < inner; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state
      let emitted = NO_SYMBOL
      let eos = 0
      for (let b = 3; b >= 0; b--) {
        const next = (((nibble >> b) & 1) === 0 ? zero : one)[node] as number
        if (next > 0) {
          node = next
          continue
        }
        if (-1 - next === EOS) eos = EOS_REACHED
        emitted = -1 - next
        node = 0
      }
      STEP[state * 16 + nibble] = eos | (emitted << 9) | node
    }
  }
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
  let state = 0
  for (let i = start; i < end; i++) {
    const byte = input[i] as number
    let step = STEP[state * 16 + (byte >> 4)] as number
    if ((step & EOS_REACHED) !== 0) throw new HuffmanError('EOS in a Huffman-coded string')
    if ((step >> 9) !== NO_SYMBOL) out[written++] = step >> 9
    state = step & 0x1ff
    step = STEP[state * 16 + (byte & 0xf)] as number
    if ((step & EOS_REACHED) !== 0) throw new HuffmanError('EOS in a Huffman-coded string')
    if ((step >> 9) !== NO_SYMBOL) out[written++] = step >> 9
    state = step & 0x1ff
  }
  const ones = ONES[state] as number
  if (ones < 0) throw new HuffmanError('Huffman padding is not all ones, or longer than 7 bits')
  return out.subarray(0, written)
}
