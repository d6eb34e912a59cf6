// For drivers of libraries with a hard-coded UPS host and no URL option: replace
// `https.request` in this process by `http.request` to BASE_URL's host and port, with the very
// same path, method, headers and body. What pointing the UPS hostname at upsbridge (hosts
// file / DNS) does, minus TLS; only the Host header differs (BASE_URL's host:port).
'use strict';

const http = require('http');
const https = require('https');

module.exports = function redirectHttpsTo(base) {
  const target = new URL(base);
  https.request = function redirected(params) {
    return http.request(Object.assign({}, params, {
      protocol: 'http:',
      host: target.hostname,
      hostname: target.hostname,
      port: target.port || 80,
    }));
  };
};
