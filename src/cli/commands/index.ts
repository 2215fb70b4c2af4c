/** Every command group registers itself here; one file per group. */
import type { Command } from 'commander';
import type { Io } from '../program.js';
import { registerIdentity } from './identity.js';
import { registerNetwork } from './network.js';
import { registerPeer } from './peer.js';
import { registerRoute } from './route.js';
import { registerInvite } from './invite.js';
import { registerAcl } from './acl.js';
import { registerStatus } from './status.js';
import { registerDwn } from './dwn.js';
import { registerDaemon } from './daemon.js';
import { registerEngine } from './engine.js';
import { registerRelay } from './relay.js';
import { registerNetcheck } from './netcheck.js';
import { registerOps } from './ops.js';
import { registerUi } from './ui.js';

export function registerCommands(program: Command, io: Io): void {
  registerIdentity(program, io);
  registerNetwork(program, io);
  registerPeer(program, io);
  registerRoute(program, io);
  registerInvite(program, io);
  registerAcl(program, io);
  registerStatus(program, io);
  registerDwn(program, io);
  registerDaemon(program, io);
  registerRelay(program, io);
  registerNetcheck(program, io);
  registerEngine(program, io);
  registerOps(program, io);
  registerUi(program, io);
}
