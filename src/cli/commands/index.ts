/** Every command group registers itself here; one file per group. */
import type { Command } from 'commander';
import type { Io } from '../program.js';
import { registerIdentity } from './identity.js';

export function registerCommands(program: Command, io: Io): void {
  registerIdentity(program, io);
}
