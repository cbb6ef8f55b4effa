import { strict as assert } from 'node:assert'
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type TestContext } from 'node:test'
import { pathToFileURL } from 'node:url'
import { Checkpointer } from './checkpointer.ts'

function walDatabase(t: TestContext): { db: DatabaseSync; file: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kv-checkpoint-'))
  const file = join(dir, 'kv.db')
  const db = new DatabaseSync(file)
  db.exec('PRAGMA journal_mode = WAL')
  db.exec('CREATE TABLE t (v TEXT)')
  t.after(() => {
    if (db.isOpen) db.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { db, file, dir }
}

function autocheckpoint(db: DatabaseSync): number {
  return Number(db.prepare('PRAGMA wal_autocheckpoint').get()?.wal_autocheckpoint)
}

function write(db: DatabaseSync, rows: number): void {
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)')
  for (let i = 0; i < rows; i++) insert.run('x'.repeat(2000))
}

async function until(condition: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !condition(); i++) await sleep(25)
  return condition()
}

test('an idle connection checkpoints by itself and no thread runs', async (t) => {
  const { db } = walDatabase(t)
  const checkpointer = new Checkpointer({ watchEveryMs: 20 })
  const release = checkpointer.register(db)
  t.after(release)
  write(db, 10)
  await sleep(200)
  assert.equal(checkpointer.running, false)
  assert.equal(autocheckpoint(db), 1000)
})

test('while a connection writes, the thread checkpoints its file and the connection no longer does; idle again, the thread ends', async (t) => {
  const { db, file } = walDatabase(t)
  const checkpointer = new Checkpointer({ watchEveryMs: 20, busyChanges: 100, idleStopMs: 400 })
  const release = checkpointer.register(db)
  t.after(release)
  write(db, 200)
  assert.ok(await until(() => autocheckpoint(db) === 0), 'the thread took over the checkpoints')
  assert.equal(checkpointer.running, true)
  // The file grows only when a checkpoint copies pages into it; this connection no longer does.
  const before = statSync(file).size
  write(db, 3000)
  assert.ok(await until(() => statSync(file).size - before >= 5_000_000), `the file grew by ${statSync(file).size - before} bytes only`)
  assert.ok(await until(() => !checkpointer.running), 'the thread ends once nothing is written')
  assert.equal(autocheckpoint(db), 1000)
  assert.deepEqual(checkpointer.problems, [])
})

test('when the checkpoint thread fails, its connections checkpoint by themselves again, and the reason is heard', async (t) => {
  const { db, dir } = walDatabase(t)
  const failing = join(dir, 'failing-worker.mjs')
  writeFileSync(failing, "await new Promise((resolve) => setTimeout(resolve, 200))\nthrow new Error('no checkpoints today')\n")
  const checkpointer = new Checkpointer({ script: pathToFileURL(failing), watchEveryMs: 20, busyChanges: 1 })
  const heard: string[] = []
  checkpointer.onProblem((problem) => heard.push(problem))
  const release = checkpointer.register(db)
  t.after(release)
  write(db, 10)
  assert.ok(await until(() => autocheckpoint(db) === 0), 'the thread took over the checkpoints')
  assert.ok(await until(() => autocheckpoint(db) === 1000), 'the connection checkpoints by itself again')
  assert.match(heard.join('\n'), /no checkpoints today.*nothing lost/)
})

test('a release resolves once the thread has closed the file: with the connection closed too, the -wal and -shm files are gone', async (t) => {
  const { db, file } = walDatabase(t)
  const checkpointer = new Checkpointer({ watchEveryMs: 20, busyChanges: 100 })
  const release = checkpointer.register(db)
  write(db, 200)
  assert.ok(await until(() => checkpointer.running), 'the thread took over the checkpoints')
  // A checkpoint of the thread's has opened its own connection to the file by now.
  await sleep(150)
  const letGo = release()
  db.close()
  await letGo
  // The last connection to close a WAL database removes its -wal and -shm: none is left open.
  assert.equal(existsSync(`${file}-wal`), false, 'no connection holds the file any more')
  assert.equal(existsSync(`${file}-shm`), false)
})
