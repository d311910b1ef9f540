import { maskedServices, parseProfile, profileFiles, profilePackages } from '../../../src/lab/profiles';

describe('lab host profiles: firewalld and nm', () => {
  it('installs each package with the provider of the logind its polkitd needs (debootstrap resolves no virtual package)', () => {
    expect(profilePackages(parseProfile('firewalld'))).toEqual(['firewalld', 'libpam-systemd']);
    expect(profilePackages(parseProfile('nm'))).toEqual(['network-manager', 'libpam-systemd']);
    expect(profilePackages(parseProfile('ufw'))).toEqual(['ufw']);
  });

  it("masks the services of the lab's packages a host's profile does not ask for", () => {
    const lab = ['ufw', 'firewalld', 'libpam-systemd', 'network-manager'];
    expect(maskedServices(parseProfile('firewalld'), lab)).toEqual([
      'NetworkManager.service',
      'NetworkManager-wait-online.service',
      'NetworkManager-dispatcher.service',
    ]);
    expect(maskedServices(undefined, ['firewalld', 'libpam-systemd'])).toEqual(['firewalld.service']);
    expect(maskedServices(parseProfile('ufw'), ['ufw'])).toEqual([]);
  });

  it('enables firewalld as packaged, and NetworkManager with every device managed', () => {
    expect(profileFiles(parseProfile('firewalld'))).toEqual({ files: {}, enable: ['/lib/systemd/system/firewalld.service'] });
    expect(profileFiles(parseProfile('nm'))).toEqual({
      files: { 'etc/NetworkManager/conf.d/99-manage-all.conf': '[device-manage-all]\nmatch-device=*\nmanaged=1\n' },
      enable: ['/lib/systemd/system/NetworkManager.service'],
    });
  });
});
