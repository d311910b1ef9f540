// Which kernel VM lab hosts boot: PODNET_LAB_VM_KERNEL read strictly (it becomes an apt source line
// and a cache directory name), and the apt source for a suite's kernel on the base's own mirror.
import { suiteSourceLine, vmKernelChoice } from '../../../src/lab/vm-image';

describe('vmKernelChoice', () => {
  it("is the machine's stock kernel when unset, empty or 'stock'", () => {
    for (const v of [undefined, '', 'stock']) expect(vmKernelChoice(v)).toEqual({ kind: 'stock' });
  });

  it('names a Debian suite', () => {
    expect(vmKernelChoice('bookworm-backports')).toEqual({ kind: 'suite', suite: 'bookworm-backports' });
    expect(vmKernelChoice('trixie')).toEqual({ kind: 'suite', suite: 'trixie' });
  });

  it('refuses anything that is no suite name, saying what it wants', () => {
    for (const v of ['bookworm backports', '../x', 'Bookworm', "a'b", 'bookworm-']) {
      expect(() => vmKernelChoice(v)).toThrow(/PODNET_LAB_VM_KERNEL must be 'stock' or a Debian suite such as bookworm-backports/);
    }
  });
});

describe('suiteSourceLine', () => {
  it("takes the mirror of the base's first deb line (debootstrap writes one), options and all", () => {
    expect(suiteSourceLine('deb http://deb.debian.org/debian bookworm main\n', 'bookworm-backports')).toBe(
      'deb http://deb.debian.org/debian bookworm-backports main\n',
    );
    expect(suiteSourceLine('# mirror\ndeb [arch=amd64] http://mirror.example/debian bookworm main contrib\n', 'bookworm-backports')).toBe(
      'deb http://mirror.example/debian bookworm-backports main\n',
    );
  });

  it('says so when there is no deb line', () => {
    expect(() => suiteSourceLine('# nothing\n', 'bookworm-backports')).toThrow(/no 'deb' line/);
  });
});
