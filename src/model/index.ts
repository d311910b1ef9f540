// The network model: pure functions and types shared by the constructs (stacks/), the
// engine (src/engine), the drift check and the agent (agent/). No I/O here.
export * from './spec';
export * from './ipv4';
export * from './pod-address';
export * from './validation-error';
export * from './validate';
export * from './subnet-allocator';
export * from './network';
export * from './host-layout';
export * from './subnet-env';
export * from './masquerade';
export * from './cni-config';
export * from './systemd-unit';
export * from './underlay';
export * from './forward-rules';
export * from './unmanaged-links';
export * from './peer-paths';
export * from './host-state';
export * from './manifest';
export * from './agent-status';
export * from './ownership-record';
export * from './agent-manifest';
export * from './drop-reasons';
