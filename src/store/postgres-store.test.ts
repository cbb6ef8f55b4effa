import { after, before } from 'node:test'
import { startTestPostgres, type TestPostgres } from '../../test/helpers/postgres.ts'
import { storeContract } from '../../test/contract/store.contract.ts'
import { PostgresStore } from './postgres-store.ts'

let server: TestPostgres
before(async () => {
  server = await startTestPostgres()
})
after(() => server.stop())

storeContract('PostgresStore', async () => PostgresStore.open(await server.database(), { max: 2 }))
