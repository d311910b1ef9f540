// The host every datapath unit test binds its datapath to: node1 of the reference network.
import type { DatapathHost } from '../../../../agent/datapaths/datapath';

export const node1Host: DatapathHost = {
  tunnelDevice: 'flannel.ipip',
  localAddress: '192.168.0.81',
  underlayDevice: 'eth0',
  mtu: 1480,
  tunnelAddress: '10.244.1.0/32',
  podCidr: '10.244.1.0/24',
  clusterCidr: '10.244.0.0/16',
};
