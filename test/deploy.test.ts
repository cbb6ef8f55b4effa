/**
 * The deployment files (deploy/, docs/deploy.md) keep their hardening: parsed as YAML and checked
 * field by field, without Docker or a cluster. What this does not prove (that Docker or the
 * network plugin enforce them) is listed in docs/deploy.md, "What was validated".
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'
import { dotenvLines, sandboxEnv } from '../src/sessions/sandbox-env.ts'
import { parseConfig } from '../src/config/load.ts'

// Parsed YAML: checked at run time by the assertions below.
type Obj = Record<string, any>

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const deploy = join(root, 'deploy')
const read = (...path: string[]): string => readFileSync(join(root, ...path), 'utf8')

const AGENT_LABELS = { 'keyvalet.dev/agent': 'true' }
const KEYVALET_LABELS = { 'app.kubernetes.io/name': 'keyvalet' }
const AGENTS_NS = 'keyvalet-agents'
const KEYVALET_NS = 'keyvalet'
const PORTS = [8787, 8789]
/** The admin listener (listen.admin): the probes ask it; never in the Service or the agents' NetworkPolicy. */
const ADMIN_PORT = 8790

function yamlDocuments(text: string, name: string): Obj[] {
  const docs = parseAllDocuments(text)
  const list = Array.isArray(docs) ? docs : [docs]
  const out: Obj[] = []
  for (const doc of list) {
    assert.deepEqual(doc.errors.map((e) => e.message), [], `${name}: YAML errors`)
    const value: unknown = doc.toJS()
    if (value !== null && value !== undefined) out.push(value as Obj)
  }
  return out
}

const k8sDocs = (file: string): Obj[] => yamlDocuments(read('deploy', 'kubernetes', file), file)
const compose = (): Obj => parse(read('deploy', 'compose.yaml')) as Obj
const dockerConfig = () => parseConfig(read('deploy', 'keyvalet.docker.yaml'), join(deploy, 'keyvalet.docker.yaml'))

describe('deploy/: every YAML file', () => {
  it('parses', () => {
    const files = readdirSync(deploy, { recursive: true, encoding: 'utf8' }).filter((f) => /\.ya?ml$/.test(f))
    assert.ok(files.length >= 5, `found ${files.join(', ')}`)
    for (const file of files) assert.ok(yamlDocuments(read('deploy', file), file).length > 0, file)
  })
})

describe('deploy/keyvalet.docker.yaml', () => {
  it("loads with keyvalet's own parser: both listeners on every interface, the admin API on the loopback only, data in the volume, no warnings", () => {
    const config = dockerConfig()
    assert.deepEqual(config.gateway, { host: '0.0.0.0', port: 8787 })
    assert.deepEqual(config.forward, { host: '0.0.0.0', port: 8789 })
    assert.deepEqual(config.admin, { host: '127.0.0.1', port: 8790 })
    assert.equal(config.dataDir, '/var/lib/keyvalet')
    assert.deepEqual(config.warnings, [])
  })
})

describe('deploy/compose.yaml', () => {
  const file = compose()
  const services = file['services'] as Obj
  const networksOf = (s: Obj): string[] => (Array.isArray(s['networks']) ? s['networks'] : Object.keys(s['networks'] ?? {}))

  it('has keyvalet on both networks, the agent only on the internal one, and the admin CLI in keyvalet\'s network namespace only', () => {
    assert.deepEqual(Object.keys(services).sort(), ['admin', 'agent', 'keyvalet'])
    assert.equal(file['networks'].agents.internal, true)
    assert.notEqual(file['networks'].egress?.internal, true)
    assert.deepEqual(networksOf(services['agent']), ['agents'])
    assert.deepEqual(networksOf(services['keyvalet']).sort(), ['agents', 'egress'])
    for (const name of ['agent', 'keyvalet']) assert.equal(services[name]['network_mode'], undefined, name)
    for (const s of Object.values(services)) assert.equal(s['ports'], undefined, 'nothing published')
    // The admin listener is on keyvalet's loopback: only a container sharing its namespace reaches it.
    assert.equal(dockerConfig().admin?.host, '127.0.0.1')
    const admin = services['admin'] as Obj
    assert.equal(admin['network_mode'], 'service:keyvalet')
    assert.deepEqual(admin['profiles'], ['admin'], 'not started by up')
    assert.equal(admin['volumes'], undefined, 'neither the data nor the config')
    assert.equal(admin['secrets'], undefined, 'not the master key')
    assert.deepEqual(admin['environment'], ['KEYVALET_ADMIN_TOKEN'])
  })

  it('hardens both services: non-root, read-only root, no capabilities, no new privileges, tmpfs /tmp', () => {
    for (const [name, s] of Object.entries(services) as [string, Obj][]) {
      const uid = String(s['user'] ?? '').split(':')[0] ?? ''
      assert.match(uid, /^[1-9]\d*$/, `${name}: numeric non-root user`)
      assert.equal(s['read_only'], true, name)
      assert.deepEqual(s['cap_drop'], ['ALL'], name)
      assert.equal(s['cap_add'], undefined, name)
      assert.equal(s['privileged'], undefined, name)
      assert.ok((s['security_opt'] as string[]).includes('no-new-privileges:true'), name)
      assert.ok((s['tmpfs'] as string[]).some((t) => t.split(':')[0] === '/tmp'), `${name}: tmpfs /tmp`)
    }
    assert.notEqual(services['agent'].user, services['keyvalet'].user, 'the agent runs under another uid than keyvalet')
    assert.notEqual(services['admin'].user, services['keyvalet'].user, 'the admin CLI runs under another uid than keyvalet')
  })

  it('gives keyvalet its master key as a secret file, its config read-only and its data in a volume', () => {
    const kv = services['keyvalet'] as Obj
    assert.deepEqual(kv['secrets'], ['keyvalet_master_key'])
    assert.equal(kv['environment'].KEYVALET_MASTER_KEY_FILE, '/run/secrets/keyvalet_master_key')
    assert.equal(kv['environment'].KEYVALET_MASTER_KEY, undefined)
    assert.ok(typeof file['secrets'].keyvalet_master_key.file === 'string')
    const mounts = kv['volumes'] as Obj[]
    assert.ok(mounts.some((m) => m['target'] === '/etc/keyvalet/keyvalet.yaml' && m['read_only'] === true && String(m['source']).endsWith('keyvalet.docker.yaml')))
    assert.ok(mounts.some((m) => m['type'] === 'volume' && m['target'] === '/var/lib/keyvalet'))
    assert.equal(kv['build'].dockerfile, 'deploy/Dockerfile')
  })

  it("gives the agent what `session create --env` prints, pointed at the keyvalet service, and the CA read-only", () => {
    const agent = services['agent'] as Obj
    const env = { ...(agent['environment'] as Record<string, string>) }
    delete env['HOME']
    const keyVar = /\$\{KEYVALET_TASK_KEY:-[^}]+\}/g
    const actual = Object.entries(env).map(([k, v]) => `${k}=${String(v).replace(keyVar, 'KEY')}`)
    const expected = dotenvLines(sandboxEnv(dockerConfig(), 'KEY', '/etc/keyvalet/ca.pem')).split('\n').filter((l) => !l.startsWith('#'))
    assert.deepEqual(actual.sort(), expected.sort())
    assert.equal(env['HTTPS_PROXY'], 'http://task:${KEYVALET_TASK_KEY:-no-task-key-set}@keyvalet:8789')
    assert.ok((agent['volumes'] as Obj[]).some((m) => m['target'] === '/etc/keyvalet/ca.pem' && m['read_only'] === true))
    assert.equal(agent['depends_on'].keyvalet.condition, 'service_healthy')
  })
})

describe('deploy/Dockerfile and .dockerignore', () => {
  const text = read('deploy', 'Dockerfile')
  // Instructions with their continuation lines joined, comments dropped.
  const instructions = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  const all = (word: string): string[] => instructions.filter((l) => l.toUpperCase().startsWith(`${word} `)).map((l) => l.slice(word.length + 1).trim())

  it('builds on the official Node 24 slim image and installs only runtime dependencies', () => {
    assert.match(all('FROM')[0] ?? '', /^node:24-slim(@sha256:[0-9a-f]{64})?$/)
    const npm = all('RUN').filter((l) => /\bnpm\s+(install|i|ci|add)\b/.test(l))
    assert.ok(npm.length > 0)
    for (const l of npm) {
      assert.match(l, /--omit=dev/, l)
      assert.match(l, /--ignore-scripts/, l)
    }
  })

  it('runs as a non-root user with a health check, the data volume and both ports', () => {
    const users = all('USER')
    assert.ok(users.length > 0)
    const last = (users.at(-1) ?? '').split(':')[0] ?? ''
    assert.match(last, /^[1-9]\d*$/, 'numeric non-root USER')
    const health = all('HEALTHCHECK')
    assert.equal(health.length, 1)
    const cmd = JSON.parse((health[0] ?? '').replace(/^.*?CMD\s+/, '')) as string[]
    assert.equal(cmd[0], 'node')
    assert.match(cmd[2] ?? '', /http:\/\/127\.0\.0\.1:8790\/readyz/, 'asks keyvalet for readiness on the admin listener')
    assert.match(cmd[2] ?? '', /status===200\?0:1/, 'healthy on 200 only')
    assert.equal(parseConfig(read('deploy', 'keyvalet.docker.yaml'), join(deploy, 'keyvalet.docker.yaml')).admin?.port, ADMIN_PORT)
    assert.deepEqual(all('VOLUME').map((v) => JSON.parse(v) as string[]), [['/var/lib/keyvalet']])
    assert.deepEqual(all('EXPOSE').flatMap((e) => e.split(/\s+/)).map(Number), [...PORTS, ADMIN_PORT])
    assert.deepEqual(all('WORKDIR'), ['/app'])
    assert.deepEqual(JSON.parse(all('ENTRYPOINT')[0] ?? ''), ['node', '--max-semi-space-size=16', 'src/cli/entry.mjs'])
    // The same malloc setting as bin/keyvalet's (test/malloc-trim.test.ts).
    assert.ok(all('ENV').includes('GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072'), all('ENV').join(' | '))
    assert.deepEqual(JSON.parse(all('CMD').at(-1) ?? ''), ['start', '--config', '/etc/keyvalet/keyvalet.yaml'])
  })

  it('keeps dependencies, state, keys and history out of the build context', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    for (const entry of ['.git', 'node_modules', '.keyvalet', 'bench/results']) assert.ok(ignored.includes(entry), entry)
    for (const ext of ['db', 'key']) assert.ok(ignored.some((l) => l === `*.${ext}` || l === `**/*.${ext}`), `*.${ext}`)
  })
})

/** matchLabels only (matchExpressions would need more than this test implements). */
function selects(selector: Obj | undefined, labels: Record<string, string>): boolean {
  assert.equal(selector?.['matchExpressions'], undefined, 'matchExpressions are not checked by this test')
  return Object.entries((selector?.['matchLabels'] ?? {}) as Record<string, string>).every(([k, v]) => labels[k] === v)
}

const isKeyvaletPeer = (peer: Obj): boolean =>
  peer['ipBlock'] === undefined && selects(peer['namespaceSelector'], { 'kubernetes.io/metadata.name': KEYVALET_NS }) && peer['podSelector'] !== undefined &&
  Object.keys(peer['podSelector'].matchLabels ?? {}).length > 0 && selects(peer['podSelector'], KEYVALET_LABELS)
const isAgentPeer = (peer: Obj): boolean =>
  peer['ipBlock'] === undefined && selects(peer['namespaceSelector'], { 'kubernetes.io/metadata.name': AGENTS_NS }) && peer['podSelector'] !== undefined &&
  Object.keys(peer['podSelector'].matchLabels ?? {}).length > 0 && selects(peer['podSelector'], AGENT_LABELS)
const portsOf = (rule: Obj): string[] => ((rule['ports'] ?? []) as Obj[]).map((p) => `${p['protocol'] ?? 'TCP'}/${p['port']}`).sort()

describe('deploy/kubernetes', () => {
  const namespaces = k8sDocs('namespace.yaml')
  const objects = k8sDocs('keyvalet.yaml')
  const policies = k8sDocs('networkpolicy.yaml')
  const one = (kind: string): Obj => {
    const found = objects.filter((o) => o['kind'] === kind)
    assert.equal(found.length, 1, kind)
    return found[0] as Obj
  }

  it('puts keyvalet and the agents in namespaces of their own that enforce the restricted Pod Security Standard', () => {
    assert.deepEqual(namespaces.map((n) => n['metadata'].name).sort(), [KEYVALET_NS, AGENTS_NS].sort())
    for (const n of namespaces) assert.equal(n['metadata'].labels['pod-security.kubernetes.io/enforce'], 'restricted')
    for (const o of [...objects, ...policies]) assert.ok([KEYVALET_NS, AGENTS_NS].includes(o['metadata'].namespace), `${o['kind']} ${o['metadata'].name}`)
  })

  it('carries deploy/keyvalet.docker.yaml in its ConfigMap', () => {
    const text = one('ConfigMap')['data']['keyvalet.yaml'] as string
    assert.deepEqual(parse(text), parse(read('deploy', 'keyvalet.docker.yaml')))
    assert.equal(parseConfig(text, '/etc/keyvalet/keyvalet.yaml').dataDir, '/var/lib/keyvalet')
  })

  it('runs one hardened replica: non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp', () => {
    const deployment = one('Deployment')
    assert.equal(deployment['spec'].replicas, 1, 'SQLite: one replica until the PostgreSQL store exists')
    assert.equal(deployment['spec'].strategy.type, 'Recreate')
    const pod = deployment['spec'].template.spec as Obj
    assert.ok(selects({ matchLabels: deployment['spec'].selector.matchLabels }, deployment['spec'].template.metadata.labels))
    assert.ok(selects({ matchLabels: KEYVALET_LABELS }, deployment['spec'].template.metadata.labels))
    assert.equal(pod['securityContext'].runAsNonRoot, true)
    assert.ok(pod['securityContext'].runAsUser > 0)
    assert.equal(pod['securityContext'].seccompProfile.type, 'RuntimeDefault')
    assert.equal(pod['automountServiceAccountToken'], false)
    assert.equal(pod['hostNetwork'], undefined)
    const containers = [...(pod['initContainers'] ?? []), ...pod['containers']] as Obj[]
    for (const c of containers) {
      const sc = c['securityContext'] as Obj
      assert.equal(sc['runAsNonRoot'], true, c['name'])
      assert.equal(sc['readOnlyRootFilesystem'], true, c['name'])
      assert.equal(sc['allowPrivilegeEscalation'], false, c['name'])
      assert.notEqual(sc['privileged'], true, c['name'])
      assert.deepEqual(sc['capabilities'], { drop: ['ALL'] }, c['name'])
      assert.equal(sc['seccompProfile'].type, 'RuntimeDefault', c['name'])
    }
  })

  it("probes keyvalet's health endpoints on the admin listener, from inside the pod (it is on the loopback), and serves the data-plane ports", () => {
    const pod = one('Deployment')['spec'].template.spec as Obj
    const main = (pod['containers'] as Obj[]).find((c) => c['name'] === 'keyvalet') as Obj
    const named = Object.fromEntries((main['ports'] as Obj[]).map((p) => [p['name'], p['containerPort']]))
    assert.deepEqual(named, { gateway: 8787, forward: 8789 }, 'the admin listener is not a pod port')
    const paths = { startupProbe: '/readyz', livenessProbe: '/healthz', readinessProbe: '/readyz' }
    for (const [probe, path] of Object.entries(paths)) {
      const command = main[probe]?.exec?.command as string[] | undefined
      assert.equal(command?.[0], 'node', probe)
      assert.match(command?.[2] ?? '', new RegExp(`http://127\\.0\\.0\\.1:${ADMIN_PORT}${path}'`), probe)
      assert.equal(main[probe].httpGet, undefined, probe)
    }
    const service = one('Service')
    assert.ok(selects({ matchLabels: service['spec'].selector }, KEYVALET_LABELS))
    assert.deepEqual((service['spec'].ports as Obj[]).map((p) => p['port']).sort(), PORTS)
  })

  it('takes the master key from a Secret through KEYVALET_MASTER_KEY_FILE under /run/secrets, and keeps data and /tmp in volumes', () => {
    const pod = one('Deployment')['spec'].template.spec as Obj
    const main = (pod['containers'] as Obj[]).find((c) => c['name'] === 'keyvalet') as Obj
    const env = Object.fromEntries((main['env'] as Obj[]).map((e) => [e['name'], e]))
    assert.equal(env['KEYVALET_MASTER_KEY'], undefined)
    const keyFile = env['KEYVALET_MASTER_KEY_FILE']?.value as string
    assert.match(keyFile, /^\/run\/secrets\//)
    const volumes = Object.fromEntries((pod['volumes'] as Obj[]).map((v) => [v['name'], v]))
    const mountOf = (c: Obj, path: string): Obj | undefined => (c['volumeMounts'] as Obj[]).find((m) => path === m['mountPath'] || path.startsWith(`${m['mountPath']}/`))
    const keyMount = mountOf(main, keyFile) as Obj
    assert.equal(keyMount['readOnly'], true)
    const keyVolume = volumes[keyMount['name']] as Obj
    // Either the Secret itself, or the in-memory copy the init container makes of it (0600: a
    // Secret volume with fsGroup is group-readable, which keyvalet refuses).
    if (keyVolume['secret'] === undefined) {
      assert.equal(keyVolume['emptyDir']?.medium, 'Memory')
      const init = ((pod['initContainers'] ?? []) as Obj[]).find((c) => (c['volumeMounts'] as Obj[]).some((m) => m['name'] === keyMount['name'])) as Obj
      assert.ok(init, 'an init container fills the key volume')
      const sources = (init['volumeMounts'] as Obj[]).map((m) => volumes[m['name']] as Obj).filter((v) => v['secret'] !== undefined)
      assert.equal(sources.length, 1, 'from a Secret')
      assert.match((init['command'] as string[]).join(' '), /0o600/)
    }
    for (const c of pod['containers'] as Obj[]) assert.ok((c['volumeMounts'] as Obj[]).every((m) => volumes[m['name']]?.secret === undefined), `${c['name']} does not mount the Secret itself`)
    const data = mountOf(main, '/var/lib/keyvalet') as Obj
    assert.ok(volumes[data['name']]?.persistentVolumeClaim !== undefined || volumes[data['name']]?.emptyDir !== undefined)
    const tmp = mountOf(main, '/tmp') as Obj
    assert.ok(volumes[tmp['name']]?.emptyDir !== undefined)
    assert.ok(objects.some((o) => o['kind'] === 'PersistentVolumeClaim'))
  })

  const policiesFor = (namespace: string, labels: Record<string, string>, type: string): Obj[] =>
    policies.filter((p) => p['metadata'].namespace === namespace && selects(p['spec'].podSelector, labels) && (p['spec'].policyTypes as string[]).includes(type))

  it('lets agent pods reach keyvalet on its two ports and nothing else (no DNS)', () => {
    const egress = policiesFor(AGENTS_NS, AGENT_LABELS, 'Egress')
    assert.ok(egress.some((p) => Object.keys(p['spec'].podSelector).length === 0 && (p['spec'].egress ?? []).length === 0), 'a default deny for the whole agents namespace')
    const rules = egress.flatMap((p) => (p['spec'].egress ?? []) as Obj[])
    assert.ok(rules.length > 0)
    for (const rule of rules) {
      assert.ok(Array.isArray(rule['to']) && rule['to'].length > 0, 'every rule names its destination (no empty `to`)')
      assert.ok((rule['to'] as Obj[]).every(isKeyvaletPeer), 'only keyvalet pods')
      assert.deepEqual(portsOf(rule), PORTS.map((p) => `TCP/${p}`), 'only the gateway and forward ports')
    }
    // An unlabelled pod in the agents namespace gets no egress at all.
    assert.deepEqual(policiesFor(AGENTS_NS, {}, 'Egress').flatMap((p) => p['spec'].egress ?? []), [])
  })

  it('lets only agent pods in to keyvalet, and keyvalet out only to the cluster DNS and HTTPS', () => {
    assert.ok(policiesFor(KEYVALET_NS, {}, 'Ingress').some((p) => (p['spec'].ingress ?? []).length === 0), 'a default deny for the keyvalet namespace')
    const ingress = policiesFor(KEYVALET_NS, KEYVALET_LABELS, 'Ingress').flatMap((p) => (p['spec'].ingress ?? []) as Obj[])
    assert.ok(ingress.length > 0)
    for (const rule of ingress) {
      assert.ok(Array.isArray(rule['from']) && rule['from'].length > 0 && (rule['from'] as Obj[]).every(isAgentPeer), 'only agent pods')
      assert.deepEqual(portsOf(rule), PORTS.map((p) => `TCP/${p}`))
    }
    const egress = policiesFor(KEYVALET_NS, KEYVALET_LABELS, 'Egress').flatMap((p) => (p['spec'].egress ?? []) as Obj[])
    assert.ok(egress.length > 0)
    for (const rule of egress) {
      const ports = portsOf(rule)
      assert.ok(ports.length > 0, 'every egress rule names its ports')
      if (ports.some((p) => p.endsWith('/53'))) {
        assert.deepEqual(ports, ['TCP/53', 'UDP/53'])
        assert.ok((rule['to'] as Obj[]).every((peer) => selects(peer['podSelector'], { 'k8s-app': 'kube-dns' }) && selects(peer['namespaceSelector'], { 'kubernetes.io/metadata.name': 'kube-system' })), 'DNS only to kube-dns')
      } else {
        assert.deepEqual(ports, ['TCP/443'])
        for (const peer of rule['to'] as Obj[]) assert.ok((peer['ipBlock']?.except ?? []).includes(peer['ipBlock']?.cidr === '::/0' ? 'fc00::/7' : '10.0.0.0/8'), 'private ranges excepted')
      }
    }
  })
})

describe('docs/deploy.md', () => {
  const text = read('docs', 'deploy.md')
  const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '')

  it('has YAML examples that parse, and an agent pod that the policies and Pod Security admit', () => {
    const docs = blocks.flatMap((b, i) => yamlDocuments(b, `docs/deploy.md yaml block ${i + 1}`))
    const pod = docs.find((d) => d['kind'] === 'Pod') as Obj
    assert.ok(pod, 'an example agent Pod')
    assert.equal(pod['metadata'].namespace, AGENTS_NS)
    assert.ok(selects({ matchLabels: AGENT_LABELS }, pod['metadata'].labels))
    assert.equal(pod['spec'].automountServiceAccountToken, false)
    assert.equal(pod['spec'].securityContext.runAsNonRoot, true)
    for (const c of pod['spec'].containers as Obj[]) {
      assert.equal(c['securityContext'].allowPrivilegeEscalation, false)
      assert.equal(c['securityContext'].readOnlyRootFilesystem, true)
      assert.deepEqual(c['securityContext'].capabilities, { drop: ['ALL'] })
    }
    assert.equal(pod['spec'].securityContext.seccompProfile.type, 'RuntimeDefault')
  })
})

describe('deploy/compose.postgres.yaml (with compose.yaml): PostgreSQL and two keyvalet replicas', () => {
  const base = compose()
  const fleet = parse(read('deploy', 'compose.postgres.yaml')) as Obj
  const services = fleet['services'] as Obj
  const fleetConfig = parse(read('deploy', 'keyvalet.postgres.yaml')) as Obj
  const mountsOf = (s: Obj): Obj[] => s['volumes'] as Obj[]
  const mountAt = (s: Obj, target: string): Obj | undefined => mountsOf(s).find((m) => m['target'] === target)

  it('adds a PostgreSQL server without a network, a one-shot migrate as the owner, then two keyvalet replicas as the runtime role', () => {
    assert.deepEqual(Object.keys(services).sort(), ['keyvalet', 'migrate', 'postgres'])
    assert.equal(services['keyvalet'].deploy.replicas, 2)
    assert.equal(services['postgres']['network_mode'], 'none')
    assert.equal(services['migrate']['network_mode'], 'none')
    assert.deepEqual(services['migrate'].depends_on, { postgres: { condition: 'service_healthy' } })
    assert.deepEqual(services['keyvalet'].depends_on, { migrate: { condition: 'service_completed_successfully' } })
    assert.equal(services['migrate'].restart, 'no')
    const args = services['migrate'].command as string[]
    assert.deepEqual(args.slice(0, 2), ['db', 'migrate'])
    assert.equal(args[args.indexOf('--user') + 1], services['postgres'].environment.POSTGRES_USER)
    assert.equal(args[args.indexOf('--grant-to') + 1], new URL(fleetConfig.store.url).username, 'the replicas\' role gets the grants')
    assert.ok(services['postgres'].healthcheck.test.includes('pg_isready'))
    assert.match(services['postgres'].environment.POSTGRES_INITDB_ARGS, /--auth-local=scram-sha-256/, 'a password on the socket too')
  })

  it('every secret a service names is defined, each password a file under /run/secrets that its service mounts', () => {
    const defined = new Set([...Object.keys(base['secrets']), ...Object.keys(fleet['secrets'])])
    for (const [name, s] of Object.entries(services)) for (const secret of (s as Obj)['secrets'] ?? []) assert.ok(defined.has(secret), `${name}: ${secret}`)
    const secretFile = (path: string): string => path.replace(/^\/run\/secrets\//, '')
    assert.ok((services['keyvalet'].secrets as string[]).includes(secretFile(fleetConfig.store.password_file)), 'the replicas read the runtime password')
    const migrate = services['migrate'].command as string[]
    assert.ok((services['migrate'].secrets as string[]).includes(secretFile(migrate[migrate.indexOf('--password-file') + 1] as string)))
    assert.ok((services['postgres'].secrets as string[]).includes(secretFile(services['postgres'].environment.POSTGRES_PASSWORD_FILE)))
    assert.ok(!(services['keyvalet'].secrets as string[]).includes('keyvalet_db_owner_password'), 'the replicas never hold the owner password')
    assert.match(read('deploy', 'postgres', 'init-runtime-role.sh'), /\/run\/secrets\/keyvalet_db_runtime_password/)
  })

  it('keyvalet reaches the server by its socket, shared through one volume, and mounts the fleet config in place of the single-host one', () => {
    const socket = new URL(fleetConfig.store.url).searchParams.get('host')
    assert.ok(socket !== null)
    for (const name of ['postgres', 'migrate', 'keyvalet']) assert.equal(mountAt(services[name], socket)?.source, 'keyvalet-pg-socket', name)
    for (const name of ['migrate', 'keyvalet']) assert.equal(mountAt(services[name], '/etc/keyvalet/keyvalet.yaml')?.source, './keyvalet.postgres.yaml', name)
    // Volumes merge by target: the base file's data volume is replaced, not shared with the single-host keyvalet.
    assert.equal(mountAt(services['keyvalet'], '/var/lib/keyvalet')?.source, 'keyvalet-fleet-data')
    assert.ok(mountAt(base['services'].keyvalet, '/var/lib/keyvalet') !== undefined)
  })

  it("keyvalet.postgres.yaml loads with keyvalet's parser and is keyvalet.docker.yaml with a store", () => {
    const config = parseConfig(read('deploy', 'keyvalet.postgres.yaml'), join(deploy, 'keyvalet.postgres.yaml'))
    assert.deepEqual(config.warnings, [])
    assert.equal(config.store.kind, 'postgres')
    const { store: _store, ...rest } = fleetConfig
    assert.deepEqual(rest, parse(read('deploy', 'keyvalet.docker.yaml')))
  })
})

describe('deploy/kubernetes/keyvalet-postgres.yaml: three replicas on PostgreSQL', () => {
  const objects = k8sDocs('keyvalet-postgres.yaml')
  const one = (kind: string, name?: string): Obj => {
    const found = objects.filter((o) => o['kind'] === kind && (name === undefined || o['metadata'].name === name))
    assert.equal(found.length, 1, `${kind} ${name ?? ''}`)
    return found[0] as Obj
  }
  const deployment = one('Deployment')
  const pod = deployment['spec'].template.spec as Obj
  const container = (pod['containers'] as Obj[])[0] as Obj
  const secretExample = k8sDocs('keyvalet-db-secret.example.yaml')[0] as Obj

  it('runs 3 replicas, rolled out one more at a time, ready on /readyz asked from inside the container', () => {
    assert.equal(deployment['spec'].replicas, 3)
    assert.deepEqual(deployment['spec'].strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } })
    const probe = (p: Obj): string => (p['exec'].command as string[]).join(' ')
    assert.match(probe(container['readinessProbe']), new RegExp(`http://127\\.0\\.0\\.1:${ADMIN_PORT}/readyz`))
    assert.match(probe(container['startupProbe']), /\/readyz/)
    assert.match(probe(container['livenessProbe']), /\/healthz/)
    assert.deepEqual(container['args'], ['start', '--config', '/etc/keyvalet/keyvalet.yaml'])
  })

  it('keeps the hardening of the single-replica Deployment', () => {
    const single = k8sDocs('keyvalet.yaml').find((o) => o['kind'] === 'Deployment') as Obj
    const singlePod = single['spec'].template.spec as Obj
    assert.deepEqual(pod['securityContext'], singlePod['securityContext'])
    assert.deepEqual(container['securityContext'], (singlePod['containers'] as Obj[])[0]?.['securityContext'])
    assert.equal(pod['automountServiceAccountToken'], false)
  })

  it('has a PodDisruptionBudget whose selector matches the pods, leaving at least one replica to lose', () => {
    const pdb = one('PodDisruptionBudget')
    const labels = deployment['spec'].template.metadata.labels as Obj
    for (const [k, v] of Object.entries(pdb['spec'].selector.matchLabels as Obj)) assert.equal(labels[k], v, k)
    assert.deepEqual(deployment['spec'].selector.matchLabels, pdb['spec'].selector.matchLabels)
    assert.ok(pdb['spec'].minAvailable >= 1 && pdb['spec'].minAvailable < deployment['spec'].replicas)
    assert.deepEqual(one('Service')['spec'].selector, deployment['spec'].selector.matchLabels)
  })

  it('every Secret and ConfigMap it references resolves: the database Secret\'s keys, the config\'s password and CA files under its mounts', () => {
    const dbKeys = new Set(Object.keys(secretExample['stringData'] as Obj))
    assert.equal(secretExample['metadata'].name, 'keyvalet-db')
    const job = one('Job')
    for (const spec of [pod, job['spec'].template.spec as Obj]) {
      for (const volume of spec['volumes'] as Obj[]) {
        if (volume['configMap'] !== undefined) one('ConfigMap', volume['configMap'].name)
        if (volume['secret']?.secretName === 'keyvalet-db') for (const item of volume['secret'].items as Obj[]) assert.ok(dbKeys.has(item['key']), item['key'])
        else if (volume['secret'] !== undefined) assert.equal(volume['secret'].secretName, 'keyvalet-master-key', 'the master key Secret, as keyvalet.yaml uses it')
      }
    }
    const fileIn = (spec: Obj, c: Obj, path: string): boolean => (c['volumeMounts'] as Obj[]).some((m) => {
      if (!path.startsWith(`${m['mountPath']}/`)) return false
      const volume = (spec['volumes'] as Obj[]).find((v) => v['name'] === m['name'])
      return (volume?.['secret']?.items as Obj[] | undefined)?.some((i) => i['path'] === path.slice(m['mountPath'].length + 1)) === true
    })
    const config = parse(one('ConfigMap', 'keyvalet-fleet-config')['data']['keyvalet.yaml']) as Obj
    assert.ok(fileIn(pod, container, config.store.password_file), 'the runtime password')
    assert.ok(fileIn(pod, container, config.store.tls.ca_file), 'the server CA')
    const migrate = (job['spec'].template.spec.containers as Obj[])[0] as Obj
    const args = migrate['args'] as string[]
    assert.ok(fileIn(job['spec'].template.spec as Obj, migrate, args[args.indexOf('--password-file') + 1] as string), 'the owner password, for the Job only')
    assert.ok(!JSON.stringify(pod['volumes']).includes('owner-password'), 'the replicas never mount the owner password')
    assert.equal(args[args.indexOf('--grant-to') + 1], new URL(config.store.url).username)
    const { store: _store, ...rest } = config
    assert.deepEqual(rest, parse(read('deploy', 'keyvalet.docker.yaml')), 'the rest as deploy/keyvalet.docker.yaml')
  })

  it('lets the pods reach PostgreSQL on 5432 only, in the restricted namespace', () => {
    const egress = one('NetworkPolicy', 'keyvalet-egress-postgres')
    assert.deepEqual(egress['spec'].podSelector.matchLabels, deployment['spec'].selector.matchLabels)
    assert.deepEqual((egress['spec'].egress as Obj[]).flatMap((r) => (r['ports'] as Obj[]).map((p) => p['port'])), [5432])
    for (const o of objects) assert.equal(o['metadata'].namespace, KEYVALET_NS, `${o['kind']} ${o['metadata'].name}`)
  })
})
