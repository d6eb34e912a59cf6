// For drivers of libraries with a hard-coded UPS host and no URL option: replace
// `https.request` in this process by `http.request` to BASE_URL's host and port, with the very
// same path, method, headers and body. What pointing the UPS hostname at upsbridge (hosts
// file / DNS) does, minus TLS; only the Host header differs (BASE_URL's host:port).
'use strict';

const http = require('http');
const https = require('https');

// Given UPS's own URL (a hosts file points the name at upsbridge), nothing is replaced.
module.exports = function redirectHttpsTo(base) {
  const target = new URL(base);
  if (module.exports.isUps(target)) return;
  https.request = function redirected(params) {
    return http.request(Object.assign({}, params, {
      protocol: 'http:',
      host: target.hostname,
      hostname: target.hostname,
      port: target.port || 80,
    }));
  };
};

// Is this UPS's own URL (https, one of its two API hosts)?
module.exports.isUps = function isUps(url) {
  return url.protocol === 'https:' && !url.port
    && (url.hostname === 'onlinetools.ups.com' || url.hostname === 'wwwcie.ups.com');
};
