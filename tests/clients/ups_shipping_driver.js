#!/usr/bin/env node
// Drive ups-shipping 1.0.0 (npm, zachzoup "UPS-NodeJS"; old XML at /ups.app/xml) through a
// base URL.
//
//     node ups_shipping_driver.js BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER
//
// Performs, with the library's public API only (one module per UPS tool, `makeRequest(options,
// callback)`, answers converted by the library with xml2js after `setJsonResponse(true)`):
//   Rating        /ups.app/xml/Rate         RatedShipment/TotalCharges
//   ShipConfirm   /ups.app/xml/ShipConfirm  ShipmentDigest
//   ShipAccept    /ups.app/xml/ShipAccept   ShipmentResults: id, PackageResults/TrackingNumber, label
//   Tracking      /ups.app/xml/Track        (of the accepted number) Shipment/Package/Activity
// The request payloads follow the library's README. Its callbacks get the parsed answer as
// their FIRST argument (the README's `function(err, data)` is wrong; users read the first).
// Prints one JSON line with what the library parsed; exit 1 with the error otherwise.
// (The library console.log()s its Rate request XML on stdout; the JSON line is the last line.)
//
// One documented adjustment, not touching how the library builds or parses XML:
// * base URL: no URL option; each class calls `https.request({host, path, method})` with the
//   host a module constant (onlinetools.ups.com / wwwcie.ups.com). As in
//   shipping_ups_driver.js, `https.request` is replaced (redirect_https.js) by `http.request` to
//   BASE_URL's host and port with the same path, method, headers and body.
'use strict';

const [base, accessKey, userId, password, shipperNumber] = process.argv.slice(2, 7);
require('./redirect_https')(base);

// The package's index.js requires './lib/AddressValidation' (the file is addressValidation.js),
// which fails on a case-sensitive file system; the README has users require each tool's module
// directly (`require('./lib/shipConfirm')`), which the driver does.
const Rating = require('ups-shipping/lib/rating');
const ShipConfirm = require('ups-shipping/lib/shipConfirm');
const ShipAccept = require('ups-shipping/lib/shipAccept');
const Tracking = require('ups-shipping/lib/tracking');

function tool(Cls) {
  const t = new Cls(accessKey, userId, password);
  t.useSandbox(false);
  t.setJsonResponse(true);
  return t;
}
const one = (x) => (Array.isArray(x) ? x[0] : x);
function fail(step, e, answer) {
  process.stderr.write(`ups-shipping ${step} failed: ${e && e.stack || e}\nanswer: ${JSON.stringify(answer)}\n`);
  process.exit(1);
}
function ok(step, root, answer) {
  if (!answer || !answer[root]) fail(step, `no ${root} in the answer`, answer);
  const r = one(answer[root]);
  const status = one(one(r.Response).ResponseStatusCode);
  if (status !== '1') fail(step, `ResponseStatusCode ${status}`, answer);
  return r;
}

const shipperAddr = { address1: '10 Elm Rd', city: 'Dover', state: 'DE', country: 'US', zip: '19901' };
const toAddr = { address1: '5 Oak Ave', city: 'Reno', state: 'NV', country: 'US', zip: '89501' };

tool(Rating).makeRequest({
  customerContext: 'Rating and Service',
  pickUpType: { code: '01', description: 'Daily Pickup' },
  shipment: {
    description: 'Books', name: 'East Warehouse', phoneNumber: '3025550100', shipperNumber,
    shipper: { address: { addressLine: '10 Elm Rd', city: 'Dover', StateProvinceCode: 'DE', PostalCode: '19901', countryCode: 'US' } },
    shipTo: { companyName: 'Acme Corp', phoneNumber: '7755550199', address: { addressLine: '5 Oak Ave', city: 'Reno', postalCode: '89501', countryCode: 'US' } },
    shipFrom: { companyName: 'East Warehouse', attentionName: 'Sam Sender', phoneNumber: '3025550100', faxNumber: '3025550101',
      address: { addressLine: '10 Elm Rd', city: 'Dover', stateProvinceCode: 'DE', postalCode: '19901', countryCode: 'US' } },
    service: { code: '03' },
    paymentInformation: { accountNumber: shipperNumber },
    package: [{ code: '02', weight: '3' }],
    schedule: { pickUpDay: '02', method: '02' },
  },
}, (rateAnswer) => {
  let rated;
  try { rated = one(ok('rate', 'RatingServiceSelectionResponse', rateAnswer).RatedShipment); } catch (e) { return fail('rate (reading)', e, rateAnswer); }
  tool(ShipConfirm).makeRequest({
    validate: 'nonvalidate',
    shipment: {
      description: 'Books',
      shipper: { name: 'East Warehouse', attentionName: 'Sam Sender', phone: '3025550100', shipperNumber, address: shipperAddr },
      shipTo: { companyName: 'Acme Corp', attentionName: 'Jo Buyer', phone: '7755550199', address: toAddr },
      payment: { accountNumber: shipperNumber },
      service: { code: 'ground' },
      package: [{ code: '02', weight: '3' }],
    },
  }, (confirmAnswer) => {
    let confirm;
    try { confirm = ok('confirm', 'ShipmentConfirmResponse', confirmAnswer); } catch (e) { return fail('confirm (reading)', e, confirmAnswer); }
    const digest = one(confirm.ShipmentDigest);
    tool(ShipAccept).makeRequest({ digest }, (acceptAnswer) => {
      let results, pkg, label, tn;
      try {
        results = one(ok('accept', 'ShipmentAcceptResponse', acceptAnswer).ShipmentResults);
        pkg = one(results.PackageResults);
        label = Buffer.from(one(one(one(pkg.LabelImage).GraphicImage)), 'base64');
        tn = one(pkg.TrackingNumber);
      } catch (e) { return fail('accept (reading)', e, acceptAnswer); }
      tool(Tracking).makeRequest({ customerContext: 'order-1001', trackingNumber: tn }, (trackAnswer) => {
        try {
          const shipment = one(ok('track', 'TrackResponse', trackAnswer).Shipment);
          const tpkg = one(shipment.Package);
          const acts = tpkg.Activity || [];
          const status = one(one(one(acts[0]).Status).StatusType);
          process.stdout.write(JSON.stringify({
            library: 'ups-shipping 1.0.0',
            rate_service: one(one(rated.Service).Code),
            rate_total: one(one(rated.TotalCharges).MonetaryValue),
            rate_currency: one(one(rated.TotalCharges).CurrencyCode),
            digest_chars: String(digest).length,
            shipment_id: one(results.ShipmentIdentificationNumber),
            tracking_number: tn,
            accept_total: one(one(one(results.ShipmentCharges).TotalCharges).MonetaryValue),
            label_bytes: label.length,
            label_is_gif: label.slice(0, 4).toString('latin1') === 'GIF8',
            track_number: one(tpkg.TrackingNumber),
            track_status: one(status.Description),
            track_status_type: one(status.Code),
            track_activity_count: acts.length,
          }) + '\n');
        } catch (e) { return fail('track (reading)', e, trackAnswer); }
      });
    });
  });
});
