import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostPort } from '../../../src/core/net/endpoint.js';
import { proxyFor } from '../../../src/core/stream/connect.js';
import { parseEnvironmentFile, proxyEnvironment } from '../../../src/core/stream/system-proxy.js';

const etc = `# set by the administrator
LANG=C.UTF-8
export https_proxy="http://proxy.corp.example:3128"
NO_PROXY='intranet.example,.local'
not a line
1BAD=x
`;

test('/etc/environment is read as pam_env reads it: comments, export, one pair of quotes', () => {
  assert.deepEqual(parseEnvironmentFile(etc), { LANG: 'C.UTF-8', https_proxy: 'http://proxy.corp.example:3128', NO_PROXY: 'intranet.example,.local' });
});

test("a unit's agent finds the machine's proxy in /etc/environment; the process's own proxy settings win, even an empty one", () => {
  const hub = HostPort.parse('hub.example.net:443');
  const env = proxyEnvironment({ PATH: '/usr/bin' }, () => etc);
  assert.equal(proxyFor(hub, env)?.host, 'proxy.corp.example:3128');
  assert.equal(proxyFor(HostPort.parse('db.intranet.example:443'), env), undefined, "the system's NO_PROXY comes along");
  assert.equal(proxyFor(hub, proxyEnvironment({ HTTPS_PROXY: 'http://mine:8080' }, () => etc))?.host, 'mine:8080');
  assert.equal(proxyFor(hub, proxyEnvironment({ HTTPS_PROXY: '' }, () => etc)), undefined, 'HTTPS_PROXY= turns the proxy off for wgp2p');
  assert.equal(proxyFor(hub, proxyEnvironment({}, () => { throw new Error('ENOENT'); })), undefined, 'no file: no proxy');
});
