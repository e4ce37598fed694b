#!/usr/bin/env node
// Filecoin piece CIDs (commP) of files, computed by the ecosystem's implementations:
// fr32-sha2-256-trunc254-padded-binary-tree-multihash (Rust compiled to WASM, fast) and
// @web3-storage/data-segment (pure JS). The hashed bytes are the file as written: for a CAR that
// Singularity padded with zeros, the zeros are part of the piece.
import { open } from 'node:fs/promises'
import { Piece, Proof, ZeroComm } from '@web3-storage/data-segment'
import * as SegmentHasher from '@web3-storage/data-segment/multihash'
import { Padded } from '@web3-storage/data-segment/piece/size'
import * as WasmHasher from 'fr32-sha2-256-trunc254-padded-binary-tree-multihash'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { cli, emit, usageError } from './lib.mjs'

const USAGE = `usage: node commp.mjs [--min-piece-size N] [--impl wasm|data-segment|both] FILE...

Prints one JSON object per file:
  {"path", "pieceCid", "pieceCidV2", "commP", "payloadSize", "pieceSize", "naturalPieceSize", "impls"}
pieceCid is the v1 piece CID (baga6ea4sea…, fil-commitment-unsealed / sha2-256-trunc254-padded),
pieceCidV2 the FRC-0069 v2 piece CID (raw / fr32-sha256-trunc254-padbintree: padding, height and
root; the library's own multihash when no --min-piece-size lifts the piece, else data-segment's
Piece.toLink with the padding up to the larger piece), commP its 32-byte root in hex, pieceSize
the padded piece size. naturalPieceSize is the smallest
piece holding the bytes; with --min-piece-size N (a power of two >= 128) a smaller piece is
extended with all-zero subtrees up to N, as Singularity's GetCommp does (go-fil-commp-hashhash
PadCommP). --impl both runs the two libraries over the same bytes and fails if they disagree.
Exit status: 0 ok; 1 unreadable file, fewer than 65 bytes, or disagreement; 2 usage error.`
const MIN_PAYLOAD = 65 // go-fil-commp-hashhash refuses less; so does dataset-worker
const READ_SIZE = 4 << 20
const FIL_COMMITMENT_UNSEALED = 0xf101
const SHA2_256_TRUNC254_PADDED = 0x1012
const RAW = 0x55

const { values, positionals: paths } = cli(USAGE, {
  'min-piece-size': { type: 'string' },
  impl: { type: 'string', default: 'wasm' }
})
const impls = { wasm: ['wasm'], 'data-segment': ['data-segment'], both: ['wasm', 'data-segment'] }[values.impl]
if (impls === undefined) usageError(USAGE, `unknown --impl ${values.impl}`)
let minPieceSize = 0n
if (values['min-piece-size'] !== undefined) {
  const text = values['min-piece-size']
  minPieceSize = /^\d+$/.test(text) ? BigInt(text) : -1n
  if (minPieceSize < 128n || (minPieceSize & (minPieceSize - 1n)) !== 0n) {
    usageError(USAGE, `--min-piece-size must be a power of two >= 128, got ${text}`)
  }
}

/** A streaming hasher per implementation, each ending in an FRC-0069 piece multihash. */
function makeHasher (impl) {
  if (impl === 'data-segment') {
    const hasher = SegmentHasher.create()
    return { write: (bytes) => hasher.write(bytes), digest: () => hasher.digest().bytes, free: () => {} }
  }
  const hasher = WasmHasher.create()
  return {
    write: (bytes) => hasher.write(bytes),
    digest: () => {
      const out = new Uint8Array(hasher.multihashByteLength())
      hasher.digestInto(out, 0, true)
      return out
    },
    free: () => hasher.free() // WASM memory is not garbage-collected
  }
}

/** Feed the file once to every hasher; returns the payload size and each piece multihash. */
async function hashFile (path) {
  const hashers = impls.map(makeHasher)
  const file = await open(path, 'r')
  try {
    const buffer = new Uint8Array(READ_SIZE)
    let payloadSize = 0
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, READ_SIZE, null)
      if (bytesRead === 0) break
      payloadSize += bytesRead
      for (const hasher of hashers) hasher.write(buffer.subarray(0, bytesRead))
    }
    return { payloadSize, multihashes: hashers.map((hasher) => hasher.digest()) }
  } finally {
    await file.close()
    for (const hasher of hashers) hasher.free()
  }
}

/** The v1 piece CID and sizes of a piece multihash, padded up to --min-piece-size. */
function describe (multihash, payloadSize) {
  const piece = Piece.fromDigest(Digest.decode(multihash))
  let { root, height } = piece
  const natural = height
  const naturalPieceSize = 32n << BigInt(height)
  while ((32n << BigInt(height)) < minPieceSize) {
    // Doubling the piece with zeros: the new root hashes the old one with the zero subtree's.
    root = Proof.computeNode(root, ZeroComm.fromLevel(height))
    height++
  }
  const cid = CID.createV1(FIL_COMMITMENT_UNSEALED, Digest.create(SHA2_256_TRUNC254_PADDED, root))
  // Unlifted, the library's multihash is the v2 digest itself; lifted, the zeros up to the larger
  // piece are padding too.
  const v2 = height === natural
    ? CID.createV1(RAW, Digest.decode(multihash))
    : Piece.toLink({ root, height, padding: Padded.fromHeight(height) - BigInt(payloadSize) })
  return {
    pieceCid: cid.toString(),
    pieceCidV2: v2.toString(),
    commP: Buffer.from(root).toString('hex'),
    pieceSize: Number(32n << BigInt(height)),
    naturalPieceSize: Number(naturalPieceSize)
  }
}

let failed = false
for (const path of paths) {
  try {
    const { payloadSize, multihashes } = await hashFile(path)
    if (payloadSize < MIN_PAYLOAD) throw new Error(`${payloadSize} bytes: a piece needs at least ${MIN_PAYLOAD}`)
    const [first, ...others] = multihashes.map((multihash) => describe(multihash, payloadSize))
    for (const [i, other] of others.entries()) {
      if (JSON.stringify(other) !== JSON.stringify(first)) {
        throw new Error(`${impls[0]} and ${impls[i + 1]} disagree: ${first.pieceCid} vs ${other.pieceCid}`)
      }
    }
    emit({ path, ...first, payloadSize, impls })
  } catch (e) {
    failed = true
    process.stderr.write(`${path}: ${e.message}\n`)
  }
}
process.exit(failed ? 1 : 0)
