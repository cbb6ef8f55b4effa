import { createServer, type Socket } from 'node:net'
import * as grpc from '@grpc/grpc-js'

/**
 * A real gRPC service (grpc-js) for the tests, its messages JSON rather than protobuf (keyvalet never
 * reads a message): demo.Echo with a unary, a server-streaming, a bidirectional and a failing
 * method, over TLS on 127.0.0.1:0. Each call's method path and metadata are recorded, and each TCP
 * connection it accepts is counted: the listener is the helper's own, each connection handed to
 * grpc-js (its connection injector), which does the TLS handshake and HTTP/2 as when it binds.
 */
const json = {
  serialize: (value: unknown): Buffer => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer): unknown => JSON.parse(bytes.toString('utf8')) as unknown,
}

function method(name: string, requestStream: boolean, responseStream: boolean) {
  return {
    path: `/demo.Echo/${name}`, requestStream, responseStream, originalName: name,
    requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize,
  }
}

export const ECHO_SERVICE = {
  Say: method('Say', false, false),
  Count: method('Count', false, true),
  Chat: method('Chat', true, true),
  Fail: method('Fail', false, false),
  Forbidden: method('Forbidden', false, false),
} satisfies grpc.ServiceDefinition

export const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo')

export interface GrpcCall {
  readonly path: string
  readonly metadata: Record<string, unknown>
}

export interface GrpcUpstream {
  readonly port: number
  readonly calls: GrpcCall[]
  /** TCP connections accepted so far (each one a TLS handshake and an HTTP/2 session). */
  readonly connections: number
  close(): Promise<void>
}

export async function startGrpcUpstream(tls: { key: string; cert: string }): Promise<GrpcUpstream> {
  const calls: GrpcCall[] = []
  const record = (path: string, metadata: grpc.Metadata): Record<string, unknown> => {
    const seen = metadata.getMap()
    calls.push({ path, metadata: seen })
    return seen
  }
  const trailer = (): grpc.Metadata => {
    const m = new grpc.Metadata()
    m.set('x-upstream-trailer', 'done')
    return m
  }
  const server = new grpc.Server()
  server.addService(ECHO_SERVICE, {
    Say: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, done: grpc.sendUnaryData<unknown>) => {
      const seen = record('/demo.Echo/Say', call.metadata)
      done(null, { text: call.request.text, authorization: seen.authorization }, trailer())
    },
    Count: (call: grpc.ServerWritableStream<{ upTo: number }, unknown>) => {
      record('/demo.Echo/Count', call.metadata)
      for (let i = 1; i <= Math.min(call.request.upTo, 100); i++) call.write({ n: i })
      call.end(trailer())
    },
    Chat: (call: grpc.ServerDuplexStream<{ text: string }, unknown>) => {
      record('/demo.Echo/Chat', call.metadata)
      call.on('data', (message: { text: string }) => call.write({ echo: message.text.toUpperCase() }))
      call.on('end', () => call.end(trailer()))
    },
    Fail: (call: grpc.ServerUnaryCall<unknown, unknown>, done: grpc.sendUnaryData<unknown>) => {
      record('/demo.Echo/Fail', call.metadata)
      done({ code: grpc.status.NOT_FOUND, details: 'no such thing' })
    },
    Forbidden: (call: grpc.ServerUnaryCall<unknown, unknown>, done: grpc.sendUnaryData<unknown>) => {
      record('/demo.Echo/Forbidden', call.metadata)
      done(null, {})
    },
  })
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }]))
  const sockets = new Set<Socket>()
  let connections = 0
  const listener = createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    injector.injectConnection(socket)
  })
  const port = await new Promise<number>((resolve, reject) => {
    listener.once('error', reject)
    listener.listen(0, '127.0.0.1', () => resolve((listener.address() as { port: number }).port))
  })
  return {
    port, calls,
    get connections() { return connections },
    close: () => new Promise((resolve) => {
      listener.close()
      injector.destroy()
      server.tryShutdown(() => {
        for (const socket of sockets) socket.destroy()
        resolve()
      })
    }),
  }
}
