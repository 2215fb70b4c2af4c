/** The operator's tools: ping, ip, whois, version, doctor, logs, completion, man, service. */
import type { Command } from 'commander';
import type { Io } from '../program.js';
import { registerCompletion } from './completion.js';
import { registerDoctor } from './doctor.js';
import { registerLogs } from './logs.js';
import { registerLookup } from './lookup.js';
import { registerPing } from './ping.js';
import { registerService } from './service.js';
import { registerVersion } from './version.js';

export function registerOps(program: Command, io: Io): void {
  registerPing(program, io);
  registerLookup(program, io);
  registerVersion(program, io);
  registerDoctor(program, io);
  registerLogs(program, io);
  registerService(program, io);
  registerCompletion(program, io);
}
