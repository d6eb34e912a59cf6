#!/usr/bin/env node
// Drive shipit 1.2.0 (npm, sailrish; multi-carrier tracking, UPS over old XML at
// /ups.app/xml/Track) through a base URL.
//
//     node shipit_driver.js BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER
//
// Performs a track (`UpsClient.requestData({trackingNumber})`: AccessRequest + TrackRequest
// with RequestOption 3 (all activity) to /ups.app/xml/Track) of the simulator's usual first
// number 1Z<SHIPPER_NUMBER>0300000001 (the simulator answers any number), and reads what the
// library presents: status (ShipperClient.STATUS_TYPES), activities (timestamp from
// Activity/Date + Time, details from Activity/Status/StatusType/Description), service, weight,
// destination, eta. shipit has no rate or ship call. Public API only. Prints one JSON line;
// exit 1 with the library's error otherwise.
//
// No runtime shim. Base URL: `UpsClient.requestOptions` builds
// `https://onlinetools.ups.com/ups.app/xml/Track` (or wwwcie with test); the driver wraps that
// method on its client instance to replace the scheme and host by BASE_URL's, keeping the
// path, method and body the library built.
'use strict';

const { UpsClient, UpsClient: { STATUS_TYPES } } = require('shipit');

const [base, accessKey, userId, password, shipperNumber] = process.argv.slice(2, 7);
const target = new URL(base);
const trackingNumber = `1Z${shipperNumber}0300000001`;

const client = new UpsClient({ licenseNumber: accessKey, userId, password }, { timeout: 30000 });
// Given UPS's own URL (a hosts file or HTTPS_PROXY points it at upsbridge): nothing adjusted.
if (!require('./redirect_https').isUps(target)) {
  const built = client.requestOptions;
  client.requestOptions = function redirected(args) {
    const opts = built.call(this, args);
    const u = new URL(opts.uri);
    opts.uri = `${target.protocol}//${target.host}${u.pathname}${u.search}`;
    return opts;
  };
}

const statusName = (s) => Object.keys(STATUS_TYPES || {}).find((k) => STATUS_TYPES[k] === s) || s;

client.requestData({ trackingNumber, raw: true }, (err, result) => {
  if (err) {
    process.stderr.write(`shipit UPS track failed: ${err && err.stack || JSON.stringify(err)}\n`);
    process.exit(1);
  }
  const acts = result.activities || [];
  process.stdout.write(JSON.stringify({
    library: 'shipit 1.2.0',
    track_number: trackingNumber,
    track_status: statusName(result.status),
    track_status_code: result.status,
    track_activity_count: acts.length,
    track_first_details: acts.length ? acts[0].details : null,
    track_first_timestamp: acts.length ? acts[0].timestamp : null,
    track_first_status_type: acts.length ? acts[0].statusType || null : null,
    track_service: result.service || null,
    track_weight: result.weight || null,
    track_destination: result.destination || null,
    track_eta: result.eta || null,
  }) + '\n');
});
