/**
 * `meshd invite [--member] [--expires 24h] [--uses N | --reusable] [--label L] [--endpoint URL] [--qr]`
 * prints the one line another machine runs to join: `meshd up <invite>` (with --qr, also as a QR
 * code). The owner invites devices and people; a member invites its own devices. `meshd invite
 * list` and `meshd invite revoke ID` manage the owner's invites.
 */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { action, subcommand, type Io } from '../program.js';
import { controlContext } from './network.js';

function parseUses(s: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 10_000) throw new UsageError(`--uses "${s}" is not a number from 1 to 10000`);
  return Number(s);
}

/** The invite as a QR code drawn with block characters (two rows of modules a line). */
async function qrText(text: string): Promise<string> {
  const QRCode = (await import('qrcode')).default;
  const lines = (await QRCode.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'L' })).split('\n');
  // the last line holds only the colour reset
  while (lines.length > 0 && lines.at(-1)!.split('\u001b').join('').replace(/\[[0-9;]*m/g, '').trim() === '') lines.pop();
  return `${lines.join('\n')}\u001b[0m`;
}

export function registerInvite(program: Command, io: Io): void {
  const invite = subcommand(program, 'invite', 'print a one-line invite another machine joins with (owner; a member invites its own devices)')
    .option('--member', 'invite a person (their device joins too, and they may bring more)')
    .option('--expires <duration>', 'how long the invite works, e.g. 30m, 24h, 7d', '24h')
    .option('--uses <n>', 'how many devices may join with it', '1')
    .option('--reusable', 'any number of devices until it expires')
    .option('--label <text>', 'a name for `meshd invite list`')
    .option('--endpoint <url>', 'the DWN address the other machine uses (default: this one, reachable)')
    .option('--qr', 'also print the invite as a QR code');
  action(invite, io, async (ctx) => {
    const o = invite.opts<{ member?: boolean; expires: string; uses: string; reusable?: boolean; label?: string; endpoint?: string; qr?: boolean }>();
    const { createInvite, parseDuration } = await import('../../control/invite-ops.js');
    if (o.reusable && invite.getOptionValueSource('uses') === 'cli') throw new UsageError('--uses and --reusable exclude each other');
    const r = await createInvite(controlContext(ctx), {
      member: Boolean(o.member),
      expiresInMs: parseDuration(o.expires),
      uses: o.reusable ? null : parseUses(o.uses),
      ...(o.label !== undefined ? { label: o.label } : {}),
      ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
    });
    const count = r.uses === null ? 'any number of devices' : r.uses === 1 ? 'one device' : `${r.uses} devices`;
    if (r.memberDevices !== undefined) {
      ctx.progress(
        `Invite for ${count} of yours, until ${r.expiresAt}. The owner's meshd admits up to ${r.memberDevices} device${r.memberDevices === 1 ? '' : 's'} per member; ` +
          'beyond that the owner approves them (`meshd peer approve`). On the other machine, run:',
      );
    } else {
      ctx.progress(`Invite ${r.id.slice(-8)} for ${count}${r.role === 'member' ? ' (a member)' : ''}, until ${r.expiresAt}. On the other machine, run:`);
    }
    const line = `sudo meshd up ${r.invite}`;
    const qr = o.qr ? await qrText(r.invite) : undefined;
    ctx.print(qr === undefined ? r : { ...r, qr }, qr === undefined ? line : `${line}\n\n${qr}`);
  });

  action(subcommand(invite, 'list', 'the invites of this network (owner)'), io, async (ctx) => {
    const { listInvites } = await import('../../control/invite-ops.js');
    const rows = await listInvites(controlContext(ctx));
    ctx.print({ invites: rows }, () =>
      rows.length === 0
        ? 'No invites. Make one with `meshd invite`.'
        : rows
            .map((r) => `${r.id.slice(-8)}  ${r.state.padEnd(8)}  ${r.role.padEnd(6)}  used ${r.used.length}/${r.uses ?? '∞'}  until ${r.expiresAt}${r.label ? `  ${r.label}` : ''}`)
            .join('\n'),
    );
  });

  action(subcommand(invite, 'revoke <id>', 'stop an invite from working, even if copied (owner)'), io, async (ctx, id: string) => {
    const { revokeInvite } = await import('../../control/invite-ops.js');
    const r = await revokeInvite(controlContext(ctx), id);
    ctx.print(r, `Invite ${r.id.slice(-8)} revoked.`);
  });
}
