// Shared helpers of the interop scripts: argument parsing, JSON output and a streaming CARv1
// reader that re-hashes every block. The CAR framing is decoded by @ipld/car's decoder and the
// hashes come from multiformats, so nothing here re-implements what the harness is checking.
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { asyncIterableReader, readBlockHead, readHeader } from '@ipld/car/decoder'
import { equals } from 'multiformats/bytes'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'

const HASHERS = new Map([[sha256.code, sha256], [identity.code, identity]])
const READ_CHUNK = 1 << 20

/** Parse argv with node:util parseArgs; on a bad option print the usage and exit 2. */
export function cli (usage, options, { minPositionals = 1 } = {}) {
  let parsed
  try {
    parsed = parseArgs({ args: process.argv.slice(2), options: { ...options, help: { type: 'boolean' } }, allowPositionals: true, strict: true })
  } catch (e) {
    usageError(usage, e.message)
  }
  if (parsed.values.help) {
    process.stdout.write(`${usage}\n`)
    process.exit(0)
  }
  if (parsed.positionals.length < minPositionals) usageError(usage, 'missing arguments')
  return parsed
}

export function usageError (usage, message) {
  process.stderr.write(`error: ${message}\n${usage}\n`)
  process.exit(2)
}

/** One JSON document per line on stdout (the format the Python tests read). */
export function emit (record) {
  process.stdout.write(`${JSON.stringify(record)}\n`)
}

/** Why `bytes` do not match `cid`, or null when they do (sha2-256 and identity only). */
export async function hashProblem (cid, bytes) {
  const hasher = HASHERS.get(cid.multihash.code)
  if (hasher === undefined) return `unsupported multihash 0x${cid.multihash.code.toString(16)}`
  const digest = await hasher.digest(bytes)
  return equals(digest.bytes, cid.multihash.bytes) ? null : `${hasher.name} of the block does not match its CID`
}

/**
 * Stream one CARv1 file, calling `onBlock({ cid, bytes, offset, problem })` for every section in
 * file order (`problem` is null or why the bytes do not match the CID). Singularity fills small
 * CARs with zero bytes up to 127/128 of the piece size: a zero-length section therefore starts
 * trailing padding, and every byte after it must be zero. Structural problems do not throw; they
 * are returned in `errors` with the file's facts:
 * { version, roots, headerBytes, blocks, blockBytes, paddingBytes, size, errors }.
 */
export async function readCar (path, onBlock) {
  const facts = { version: null, roots: [], headerBytes: 0, blocks: 0, blockBytes: 0, paddingBytes: 0, size: 0, errors: [] }
  const stream = createReadStream(path, { highWaterMark: 4 * READ_CHUNK })
  const reader = asyncIterableReader(stream)
  try {
    facts.size = (await stat(path)).size
    const header = await readHeader(reader)
    facts.version = 'dataOffset' in header ? 2 : header.version
    facts.roots = header.roots.map(String)
    facts.headerBytes = reader.pos
    if (facts.version !== 1) throw new Error(`CAR version ${facts.version}, expected 1`)
    if (facts.roots.length === 0) throw new Error('the CAR header lists no root')
    for (;;) {
      const next = await reader.upTo(1)
      if (next.length === 0) break
      if (next[0] === 0) {
        await skipZeroPadding(reader, facts)
        break
      }
      const offset = reader.pos
      const head = await readBlockHead(reader)
      // A copy: the reader reuses its buffer, and the export keeps every block.
      const bytes = new Uint8Array(await reader.exactly(head.blockLength, true))
      facts.blocks++
      facts.blockBytes += bytes.length
      await onBlock({ cid: head.cid, bytes, offset, problem: await hashProblem(head.cid, bytes) })
    }
  } catch (e) {
    facts.errors.push(`at offset ${reader.pos}: ${e.message}`)
  } finally {
    stream.destroy() // stopped early on an error: release the file now
  }
  return facts
}

async function skipZeroPadding (reader, facts) {
  const start = reader.pos
  for (;;) {
    const chunk = await reader.upTo(READ_CHUNK)
    if (chunk.length === 0) return
    const nonZero = chunk.findIndex((byte) => byte !== 0)
    if (nonZero !== -1) {
      throw new Error(`non-zero byte at offset ${reader.pos + nonZero} in the trailing zero padding that starts at ${start}`)
    }
    reader.seek(chunk.length)
    facts.paddingBytes += chunk.length
  }
}
