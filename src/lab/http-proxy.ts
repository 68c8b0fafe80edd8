import { ipv4Of, ipv4SubnetOf, type RouterPlan } from './plan.js';

/**
 * The lab's `http-proxy` router (issue 12): a network whose only way out is an HTTP proxy, as in
 * a corporate or guest network. The proxy is tinyproxy from Debian, run by the lab inside the
 * router's own namespace and listening on the router's LAN address; the router forwards nothing
 * from its LAN (no UDP, no direct TCP), takes only the proxy's port from it, and lets the proxy
 * itself out only to TCP 443, so CONNECT to 443 is all that passes: a plain HTTP request, or a
 * CONNECT to any other port, is refused by tinyproxy or dies at the router.
 *
 * Hosts behind it find the proxy as a real client would, through `HTTPS_PROXY`
 * (Lab#proxyOf gives the URL; the lab's Scenario sets it for every wgp2p process on such a host).
 */

/** tinyproxy's port on the router's LAN address; 3128 is what proxies are usually found on. */
export const LAB_PROXY_PORT = 3128;

/** The URL a host behind the router puts in HTTPS_PROXY. */
export function proxyUrl(r: RouterPlan): string {
  return `http://${ipv4SubnetOf(r.lan).gateway.toString()}:${LAB_PROXY_PORT}`;
}

/** The router's input from its LAN: the proxy's port and replies, nothing else. */
export function proxyInputRules(r: RouterPlan): string[] {
  const gw = ipv4SubnetOf(r.lan).gateway.toString();
  return ['iifname "lan" ct state established,related accept', `iifname "lan" ip daddr ${gw} tcp dport ${LAB_PROXY_PORT} accept`, 'iifname "lan" drop'];
}

/** What leaves the router's WAN: the proxy's connections to TCP 443 (and replies to the lab's own probes), nothing else. */
export function proxyOutputRules(): string[] {
  return ['oifname "wan" ct state established,related accept', 'oifname "wan" tcp dport 443 accept', 'oifname "wan" drop'];
}

/**
 * tinyproxy's configuration. Runs in the foreground (-d) with its log on stderr (no LogFile and
 * no Syslog), which the lab's daemon log keeps. `ConnectPort 443` limits CONNECT to 443; the
 * router's output rules make sure nothing else gets out either.
 */
export function tinyproxyConfig(r: RouterPlan): string {
  const gw = ipv4SubnetOf(r.lan).gateway.toString();
  ipv4Of(r.wan, `router "${r.name}"`);
  return [
    'User nobody',
    'Group nogroup',
    `Port ${LAB_PROXY_PORT}`,
    `Listen ${gw}`,
    'Timeout 600',
    'LogLevel Info',
    'MaxClients 64',
    `Allow ${ipv4SubnetOf(r.lan).subnet.toString()}`,
    'ConnectPort 443',
    'DisableViaHeader Yes',
    '',
  ].join('\n');
}
