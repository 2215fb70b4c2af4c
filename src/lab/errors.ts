/**
 * The lab's one error class. `E_LAB` for a command or set-up step that failed, `E_TIMEOUT` when
 * something did not happen in time. Both carry the command and its stderr when there was one, so
 * a failing test says why without rerunning it by hand.
 */
import { MeshdError } from '../errors.js';

export class LabError extends MeshdError {
  /** The command that failed, as run (namespace wrapper included). */
  readonly argv: readonly string[] | undefined;
  /** What the command printed on stderr (or a captured output tail). */
  readonly stderr: string | undefined;

  constructor(
    code: 'E_LAB' | 'E_TIMEOUT',
    message: string,
    options?: { argv?: readonly string[]; stderr?: string; cause?: unknown },
  ) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.argv = options?.argv;
    this.stderr = options?.stderr;
  }
}
