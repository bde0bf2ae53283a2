// One js-libp2p GossipSub node, driven by benchmarks/gossip_latency.py over stdin/stdout
// JSON lines (the same protocol as the Python children; see that file's docstring).
//
//   node --import ./polyfill.mjs harness.mjs --listen-ip 127.0.0.1 --topic T --seed-hex <64 hex>
//        [--heartbeat-ms 1000] [--d 6] [--dlo 4] [--dhi 12]
//
// Stack: TCP + Noise + yamux + identify + GossipSub (meshsub 1.2/1.1/1.0), strict signing,
// no flood publishing (py-libp2p has none; js enables it by default), no IP-colocation
// penalty (all nodes share one IP here), one node per process.
// Times are wall-clock nanoseconds (performance.timeOrigin + performance.now(), the same
// clock as Python's time.time_ns(); microsecond resolution).

import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const { values: args } = parseArgs({
  options: {
    'listen-ip': { type: 'string', default: '127.0.0.1' },
    topic: { type: 'string' },
    'seed-hex': { type: 'string' },
    'heartbeat-ms': { type: 'string', default: '1000' },
    d: { type: 'string', default: '6' },
    dlo: { type: 'string', default: '4' },
    dhi: { type: 'string', default: '12' }
  }
})

function nowNs () {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)) + '\n')
}

const seed = Uint8Array.from(Buffer.from(args['seed-hex'], 'hex'))
const privateKey = await generateKeyPairFromSeed('Ed25519', seed)
const topic = args.topic

const node = await createLibp2p({
  privateKey,
  addresses: { listen: [`/ip4/${args['listen-ip']}/tcp/0`] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  // The defaults refuse more than 5 inbound connections per second per host and 10 pending:
  // the benchmark's nodes all dial at once.
  connectionManager: { inboundConnectionThreshold: 10000, maxIncomingPendingConnections: 1000, maxConnections: 1000 },
  services: {
    identify: identify(),
    pubsub: gossipsub({
      D: Number(args.d),
      Dlo: Number(args.dlo),
      Dhi: Number(args.dhi),
      heartbeatInterval: Number(args['heartbeat-ms']),
      globalSignaturePolicy: 'StrictSign',
      floodPublish: false,
      emitSelf: false,
      allowPublishToZeroTopicPeers: true,
      // All benchmark nodes share one IP (127.0.0.1, or one subnet under --netem); the default
      // IP-colocation penalty (-5 x surplus^2 beyond 10 peers per IP) would graylist every
      // peer from N=12 on. py-libp2p's scoring is off altogether.
      scoreParams: { IPColocationFactorWeight: 0 }
    })
  }
})
const ps = node.services.pubsub

// Count every publish message received from a neighbour (first copies and duplicates).
let inbound = 0
const handle = ps.handleReceivedMessage.bind(ps)
ps.handleReceivedMessage = (from, rpcMsg) => { inbound++; return handle(from, rpcMsg) }

const published = [] // [id, t_pub_ns]
const received = [] // [id, t_pub_ns, t_recv_ns]
ps.addEventListener('message', (evt) => {
  const t = nowNs()
  const msg = evt.detail
  if (msg.topic !== topic || msg.data.length < 16) return
  const view = new DataView(msg.data.buffer, msg.data.byteOffset, 16)
  received.push([view.getBigUint64(0), view.getBigUint64(8), t])
})
ps.subscribe(topic)
await node.start()

emit({ event: 'listening', peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String), pid: process.pid })

async function publishOne (id, size) {
  const data = new Uint8Array(size)
  const view = new DataView(data.buffer)
  const t = nowNs()
  view.setBigUint64(0, BigInt(id))
  view.setBigUint64(8, t)
  published.push([id, t])
  try {
    await ps.publish(topic, data)
  } catch (err) {
    emit({ event: 'log', message: `publish ${id} failed: ${err}` })
  }
}

function runSchedule (cmd) {
  const start = BigInt(cmd.start_ns)
  let pending = cmd.schedule.length
  if (pending === 0) emit({ event: 'run_done' })
  for (const [offset, id] of cmd.schedule) {
    const delayMs = Number(start + BigInt(offset) - nowNs()) / 1e6
    setTimeout(() => {
      publishOne(id, cmd.size).finally(() => { if (--pending === 0) emit({ event: 'run_done' }) })
    }, Math.max(0, delayMs))
  }
}

async function handleCommand (cmd) {
  switch (cmd.cmd) {
    case 'connect': {
      const failed = []
      await Promise.all(cmd.addrs.map(async (a) => {
        try { await node.dial(multiaddr(a)) } catch (err) { failed.push(`${a}: ${err}`) }
      }))
      emit({ event: 'connected', ok: cmd.addrs.length - failed.length, failed })
      break
    }
    case 'status':
      emit({
        event: 'status',
        connected: node.getPeers().length,
        mesh: ps.getMeshPeers(topic).length,
        topic_peers: ps.getSubscribers(topic).length
      })
      break
    case 'run':
      runSchedule(cmd)
      emit({ event: 'scheduled' })
      break
    case 'report':
      emit({ event: 'report', pub: published, recv: received, inbound, delivered: received.length })
      break
    case 'quit':
      await node.stop()
      process.exit(0)
      break
    default:
      emit({ event: 'error', message: `unknown command ${cmd.cmd}` })
  }
}

const rl = createInterface({ input: process.stdin })
let chain = Promise.resolve()
rl.on('line', (line) => {
  if (!line.trim()) return
  chain = chain.then(() => handleCommand(JSON.parse(line))).catch((err) => emit({ event: 'error', message: String(err) }))
})
rl.on('close', async () => {
  try { await node.stop() } finally { process.exit(0) }
})
