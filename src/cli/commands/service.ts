/**
 * `meshd service install|uninstall|status`: meshd as a systemd service (service-unit.ts says
 * what the unit grants and why). `install --dry-run` prints the unit and changes nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { MeshdError, UsageError } from '../../errors.js';
import { writeFileAtomic } from '../../identity/state-files.js';
import { action, subcommand, type CommandContext, type Io } from '../program.js';
import { defaultServiceUser, serviceUnit, systemdRunning } from './service-unit.js';

const UNIT = 'meshd.service';
const DEFAULT_UNIT_DIR = '/etc/systemd/system';
/** bin/meshd.js of this installation (dist/src/cli/commands → the package root). */
const MESHD_BIN = fileURLToPath(new URL('../../../../bin/meshd.js', import.meta.url));

function systemctl(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('systemctl', args, { encoding: 'utf8', timeout: 60_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() || (r.error?.message ?? '') };
}

function unitPath(dir: string | undefined): string {
  return join(resolve(dir ?? DEFAULT_UNIT_DIR), UNIT);
}

function needRoot(sub: 'install' | 'uninstall', dir: string | undefined): void {
  if (dir === undefined && process.getuid?.() !== 0) throw new MeshdError('E_USAGE', `meshd service ${sub} changes ${DEFAULT_UNIT_DIR}: it needs root`, { hint: `sudo meshd service ${sub}` });
}

function install(ctx: CommandContext, o: { user?: string; unitDir?: string; dryRun?: boolean; bindLowPorts?: boolean; start?: boolean }, upArgs: string[]): void {
  for (const a of upArgs) if (a === '--home' || a === '--foreground') throw new UsageError(`${a} is set by the unit itself`, { hint: 'give the home with `meshd --home DIR service install`' });
  const node = process.execPath;
  const user = o.user ?? defaultServiceUser(node, dirname(dirname(MESHD_BIN)));
  if (!/^(dynamic|[a-z_][a-z0-9_-]{0,31})$/.test(user)) throw new UsageError(`--user "${user}" is not a user name (or "dynamic")`);
  const unit = serviceUnit({ node, meshd: MESHD_BIN, home: ctx.home, user, upArgs, bindLowPorts: o.bindLowPorts === true });
  if (o.dryRun) {
    ctx.io.stdout(unit);
    return;
  }
  needRoot('install', o.unitDir);
  const path = unitPath(o.unitDir);
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, unit, 0o644);
  ctx.progress(`wrote ${path} (runs as ${user === 'dynamic' ? 'a dynamic user' : user}, home ${ctx.home})`);
  if (o.unitDir !== undefined || !systemdRunning()) {
    ctx.print({ unit: path, enabled: false }, `systemd is not managing this system${o.unitDir !== undefined ? ' directory' : ''}: enable it where it does with \`systemctl enable --now ${UNIT}\``);
    return;
  }
  for (const args of [['daemon-reload'], ['enable', ...(o.start === false ? [] : ['--now']), UNIT]]) {
    const r = systemctl(args);
    if (!r.ok) throw new MeshdError('E_CONFIG_INVALID', `systemctl ${args.join(' ')} failed: ${r.out.split('\n')[0]}`, { hint: `journalctl -u ${UNIT} says more` });
  }
  ctx.print({ unit: path, enabled: true }, `meshd is installed as ${UNIT}, enabled at boot${o.start === false ? '' : ' and started'}. \`meshd service status\` shows it.`);
}

export function registerService(program: Command, io: Io): void {
  const service = subcommand(program, 'service', 'run meshd as a systemd service: install, uninstall, status');

  const inst = subcommand(service, 'install [up-args...]', 'write and enable the systemd unit (runs `meshd up --foreground`; extra `up` options after --)')
    .option('--user <name>', 'run as this user, "dynamic" (DynamicUser) or root (default: dynamic when it can read meshd)')
    .option('--unit-dir <dir>', `where to write ${UNIT} (default ${DEFAULT_UNIT_DIR}; another directory is only written)`)
    .option('--bind-low-ports', 'also grant CAP_NET_BIND_SERVICE (a relay or DWN on a port below 1024)')
    .option('--no-start', 'enable at boot but do not start now')
    .option('--dry-run', 'print the unit and change nothing');
  action(inst, io, (ctx, upArgs: string[] | undefined) => install(ctx, inst.opts(), upArgs ?? []));

  const uninst = subcommand(service, 'uninstall', `stop and disable ${UNIT} and remove it`).option('--unit-dir <dir>', `where ${UNIT} is (default ${DEFAULT_UNIT_DIR})`);
  action(uninst, io, (ctx) => {
    const o = uninst.opts<{ unitDir?: string }>();
    needRoot('uninstall', o.unitDir);
    const path = unitPath(o.unitDir);
    const managed = o.unitDir === undefined && systemdRunning();
    if (managed) systemctl(['disable', '--now', UNIT]); // fine when it was not enabled
    const existed = existsSync(path);
    rmSync(path, { force: true });
    if (managed) systemctl(['daemon-reload']);
    ctx.print({ unit: path, removed: existed }, existed ? `removed ${path}${managed ? ' (stopped and disabled)' : ''}` : `${UNIT} was not installed (${path})`);
  });

  const status = subcommand(service, 'status', `is ${UNIT} installed, enabled and running`).option('--unit-dir <dir>', `where ${UNIT} is (default ${DEFAULT_UNIT_DIR})`);
  action(status, io, (ctx) => {
    const o = status.opts<{ unitDir?: string }>();
    const path = unitPath(o.unitDir);
    const installed = existsSync(path);
    const exec = installed ? (/^ExecStart=(.*)$/m.exec(readFileSync(path, 'utf8'))?.[1] ?? null) : null;
    if (o.unitDir !== undefined || !systemdRunning()) {
      ctx.print({ unit: path, installed, exec, systemd: false }, `${UNIT}: ${installed ? `installed at ${path}` : 'not installed'}; systemd is not managing this system, so it is not running as a service`);
      return;
    }
    const r = systemctl(['show', UNIT, '-p', 'LoadState,ActiveState,SubState,UnitFileState,MainPID,NRestarts']);
    const props = Object.fromEntries(r.out.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const data = { unit: path, installed, exec, systemd: true, ...props };
    ctx.print(data, () =>
      installed
        ? `${UNIT}: ${props.ActiveState ?? '?'} (${props.SubState ?? '?'}), ${props.UnitFileState ?? '?'} at boot, pid ${props.MainPID ?? '-'}, restarts ${props.NRestarts ?? 0}`
        : `${UNIT} is not installed: \`sudo meshd service install\``,
    );
  });
}
