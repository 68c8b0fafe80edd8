/** The agent's local admin socket (mode 0600), where `wgp2p status --config` reads it. */
export const agentSocketPath = (ifname: string) => `/run/wgp2p/agent-${ifname}.sock`;
