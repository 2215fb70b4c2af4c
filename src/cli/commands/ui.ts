/**
 * `meshd ui [--open]`: the dashboard. Asks the running daemon for its loopback web page (started
 * on first use) and a one-time link, prints the link and, with --open, hands it to xdg-open.
 */
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { action, subcommand, type Io } from '../program.js';

export function registerUi(program: Command, io: Io): void {
  const ui = subcommand(program, 'ui', 'print a one-time link to the dashboard served by the running daemon (127.0.0.1 only)').option(
    '--open',
    'also open it in the desktop browser (xdg-open)',
  );
  action(ui, io, async (ctx) => {
    const o = ui.opts<{ open?: boolean }>();
    const { callDaemon } = await import('../../daemon/api.js');
    const r = await callDaemon<{ url: string; port: number }>(ctx.home, 'POST', '/v0/ui', {});
    ctx.progress('The dashboard (this machine only; the link works once, within 5 minutes — run `meshd ui` again for another):');
    ctx.print(r, r.url);
    if (o.open) {
      const opened = await new Promise<boolean>((resolve) => {
        const child = spawn('xdg-open', [r.url], { stdio: 'ignore', detached: true });
        child.once('error', () => resolve(false));
        child.once('spawn', () => {
          child.unref();
          resolve(true);
        });
      });
      if (!opened) ctx.progress('Could not run xdg-open: open the link above in a browser on this machine.');
    }
  });
}
