#!/usr/bin/env node
// Rebuild the file tree under a root CID from the blocks of CAR files with ipfs-unixfs-exporter,
// the UnixFS reader IPFS implementations use (basic and HAMT-sharded directories, dag-pb file
// nodes, raw leaves). Every block is re-hashed against its CID while the CARs are loaded.
import { createWriteStream } from 'node:fs'
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { exporter } from 'ipfs-unixfs-exporter'
import { CID } from 'multiformats/cid'
import { cli, emit, readCar, usageError } from './lib.mjs'

const USAGE = `usage: node export.mjs --root CID OUTDIR CAR...

Loads every block of the CARs (each re-hashed against its CID), exports the UnixFS tree under
CID into OUTDIR (created; it must be empty) and prints one JSON object:
  {"root", "type", "files", "directories", "bytes", "blocks", "blocksUsed"}
A directory root is written as OUTDIR itself; a file root as OUTDIR/<CID>. Every entry is also
looked up again by name in its directory, which is how IPFS resolves a path: in a HAMT directory
this checks that the entry sits in the bucket its name hashes to (slow: about 4 ms an entry).
Exit status: 0 ok; 1 a bad CAR or block, a missing block, a bad entry name or a failed lookup;
2 usage error.`

const { values, positionals } = cli(USAGE, { root: { type: 'string' } }, { minPositionals: 2 })
const [outDir, ...carPaths] = positionals
let root
try {
  root = CID.parse(values.root ?? '')
} catch (e) {
  usageError(USAGE, `--root must be a CID, got "${values.root ?? ''}" (${e.message})`)
}

function fail (message) {
  process.stderr.write(`error: ${message}\n`)
  process.exit(1)
}

// 1. Every block of every CAR, in memory: the test datasets are small.
const blocks = new Map()
for (const path of carPaths) {
  const facts = await readCar(path, ({ cid, bytes, offset, problem }) => {
    if (problem) fail(`${path}: block ${cid} at offset ${offset}: ${problem}`)
    blocks.set(cid.toString(), bytes)
  })
  if (facts.errors.length > 0) fail(`${path}: ${facts.errors.join('; ')}`)
}
const used = new Set()
const blockstore = {
  // interface-blockstore v7: get() yields the block's bytes, possibly in several chunks.
  * get (cid) {
    const key = cid.toString()
    const bytes = blocks.get(key)
    if (bytes === undefined) throw new Error(`block ${key} is in none of the CARs`)
    used.add(key)
    yield bytes
  }
}

// 2. Export, depth first. Names come from the DAG, so they must be safe as path segments.
const summary = { root: root.toString(), type: null, files: 0, directories: 0, bytes: 0 }

function checkName (name, where) {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    fail(`${where}: entry name ${JSON.stringify(name)} is not a valid file name`)
  }
}

async function writeFile (entry, target) {
  let bytes = 0
  async function * counted () {
    for await (const chunk of entry.content()) {
      bytes += chunk.length
      yield chunk
    }
  }
  await pipeline(Readable.from(counted()), createWriteStream(target, { flags: 'wx' }))
  summary.files++
  summary.bytes += bytes
}

/** The entry `name` of a directory, found by name the way IPFS resolves a path. */
async function lookUp (directory, name, expected) {
  const path = `${directory}/${name}`
  const found = await exporter(path, blockstore)
  if (!found.cid.equals(expected)) fail(`looking up ${path} found ${found.cid}, not ${expected}`)
  return found
}

async function exportDirectory (entry, target, segments) {
  await mkdir(target, { recursive: true })
  summary.directories++
  const names = new Set()
  const where = `directory /${segments.join('/')}`
  for await (const { name, cid } of entry.entries()) {
    checkName(name, where)
    if (names.has(name)) fail(`${where}: duplicate entry ${name}`)
    names.add(name)
    const childSegments = [...segments, name]
    const child = await lookUp(entry.cid, name, cid)
    await exportEntry(child, join(target, name), childSegments)
  }
}

async function exportEntry (entry, target, segments) {
  if (entry.type === 'directory') await exportDirectory(entry, target, segments)
  else if (entry.type === 'file' || entry.type === 'raw') await writeFile(entry, target)
  else fail(`/${segments.join('/')}: unexpected ${entry.type} node ${entry.cid}`)
}

try {
  const existing = await readdir(outDir).catch((e) => { if (e.code === 'ENOENT') return []; throw e })
  if (existing.length > 0) usageError(USAGE, `OUTDIR ${outDir} is not empty`)
  const top = await exporter(root, blockstore)
  summary.type = top.type
  if (top.type === 'directory') {
    await exportEntry(top, outDir, [])
  } else {
    await mkdir(outDir, { recursive: true })
    await exportEntry(top, join(outDir, root.toString()), [])
  }
} catch (e) {
  fail(e.message)
}
emit({ ...summary, blocks: blocks.size, blocksUsed: used.size })
