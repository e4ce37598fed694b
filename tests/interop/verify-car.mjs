#!/usr/bin/env node
// Check CARv1 files with the ecosystem's libraries: @ipld/car decodes the framing, multiformats
// re-hashes every block against its CID, @ipld/dag-pb and ipfs-unixfs decode every dag-pb block.
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import * as raw from 'multiformats/codecs/raw'
import { cli, emit, readCar } from './lib.mjs'

const USAGE = `usage: node verify-car.mjs FILE.car...

Prints one JSON object per CAR:
  {"path", "ok", "errors": [...], "version", "roots", "rootsPresent", "blocks", "duplicates",
   "codecs": {"raw": n, "dag-pb": n}, "unixfs": {"file": n, "directory": n, ...},
   "headerBytes", "blockBytes", "paddingBytes", "size"}
A CAR is ok when its framing is sound, every block matches its CID, every dag-pb block decodes
as a UnixFS node, every root is one of its blocks and trailing padding (if any) is all zeros.
Exit status: 0 all ok; 1 any problem (also printed on stderr); 2 usage error.`
const CODECS = new Map([[raw.code, 'raw'], [dagPb.code, 'dag-pb']])
const MAX_ERRORS = 20 // per CAR: the first few say what is wrong

const { positionals: paths } = cli(USAGE, {})

async function verify (path) {
  const report = { path, ok: false, errors: [], codecs: {}, unixfs: {}, duplicates: 0 }
  const seen = new Set()
  const problem = (message) => { if (report.errors.length < MAX_ERRORS) report.errors.push(message) }
  const facts = await readCar(path, ({ cid, bytes, offset, problem: hashProblem }) => {
    const key = cid.toString()
    if (hashProblem) problem(`block ${key} at offset ${offset}: ${hashProblem}`)
    if (seen.has(key)) report.duplicates++
    seen.add(key)
    const codec = CODECS.get(cid.code)
    if (codec === undefined) {
      problem(`block ${key} at offset ${offset}: unexpected codec 0x${cid.code.toString(16)}`)
      return
    }
    report.codecs[codec] = (report.codecs[codec] ?? 0) + 1
    if (cid.code === dagPb.code) {
      try {
        const node = dagPb.decode(bytes)
        const type = node.Data === undefined ? '(no data)' : UnixFS.unmarshal(node.Data).type
        report.unixfs[type] = (report.unixfs[type] ?? 0) + 1
      } catch (e) {
        problem(`block ${key} at offset ${offset}: not a dag-pb UnixFS node: ${e.message}`)
      }
    }
  })
  for (const message of facts.errors) problem(message)
  const rootsPresent = facts.roots.map((root) => seen.has(root))
  facts.roots.forEach((root, i) => { if (!rootsPresent[i]) problem(`root ${root} is not a block of this CAR`) })
  const { errors, ...rest } = facts
  Object.assign(report, rest, { rootsPresent })
  report.ok = report.errors.length === 0
  return report
}

let failed = false
for (const path of paths) {
  const report = await verify(path)
  emit(report)
  if (!report.ok) {
    failed = true
    for (const message of report.errors) process.stderr.write(`${path}: ${message}\n`)
  }
}
process.exit(failed ? 1 : 0)
