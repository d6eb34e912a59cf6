#!/usr/bin/env node
// Drive shipping-ups 0.5.7 (npm, uh-sem-blee 2016; old XML at /ups.app/xml) through a base URL.
//
//     node shipping_ups_driver.js BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER
//
// Performs a rate (`ups.rates`, /ups.app/xml/Rate), then a ship: `ups.confirm`
// (/ups.app/xml/ShipConfirm) and `ups.accept` with the digest it got
// (/ups.app/xml/ShipAccept), with the library's public API only. Prints one JSON line
// with what the library parsed; exit 0 on success, 1 with the library's error on stderr.
//
// One documented adjustment, not touching how the library builds or parses XML:
// * base URL: shipping-ups has no URL option. Its host is a constant inside the
//   constructor closure (`onlinetools.ups.com` / `wwwcie.ups.com`) and it always calls
//   `require('https').request(params)` with {host, path, method, headers}. The driver
//   replaces `https.request` in this process by a function that sends the very same
//   params (path, method, headers, body) with `http.request` to BASE_URL's host and port:
//   what pointing the UPS hostname at upsbridge (hosts file / DNS) would do, minus TLS.
//   Only the Host header differs (BASE_URL's host:port).
'use strict';

const [base, accessKey, userId, password, shipperNumber] = process.argv.slice(2, 7);
require('./redirect_https')(base);

const UPS = require('shipping-ups');

const ups = new UPS({
  environment: 'live',
  access_key: accessKey,
  username: userId,
  password: password,
  imperial: true,
});

const shipper = {
  name: 'East Warehouse',
  attention_name: 'Sam Sender',
  phone_number: '3025550100',
  shipper_number: shipperNumber,
  address: {
    address_line_1: '10 Elm Rd',
    city: 'Dover',
    state_code: 'DE',
    country_code: 'US',
    postal_code: '19901',
  },
};
const shipTo = {
  company_name: 'Acme Corp',
  attention_name: 'Jo Buyer',
  phone_number: '7755550199',
  address: {
    address_line_1: '5 Oak Ave',
    city: 'Reno',
    state_code: 'NV',
    country_code: 'US',
    postal_code: '89501',
  },
};
const packages = [{
  description: 'Books',
  weight: 3,
  dimensions: { length: 10, width: 8, height: 4 },
}];

function fail(step, err) {
  let text;
  try { text = JSON.stringify(err); } catch (e) { text = String(err); }
  if (err instanceof Error) text = err.stack || String(err);
  process.stderr.write(`shipping-ups ${step} failed: ${text}\n`);
  process.exit(1);
}

function first(x) { return Array.isArray(x) ? x[0] : x; }

ups.rates({ shipper, ship_to: shipTo, packages, service: '03' }, (err, rate) => {
  if (err) return fail('rates', err);
  let rated;
  try { rated = first(rate.RatedShipment); } catch (e) { return fail('rates (reading the answer)', e); }
  ups.confirm({
    shipper, ship_to: shipTo, packages, service_code: '03',
    shipment_description: 'Books', label_type: 'GIF',
  }, (err2, confirm) => {
    if (err2) return fail('confirm', err2);
    ups.accept(confirm.ShipmentDigest, (err3, accept) => {
      if (err3) return fail('accept', err3);
      try {
        const results = accept.ShipmentResults;
        const pkg = first(results.PackageResults);
        const image = pkg.LabelImage.GraphicImage;
        const label = Buffer.from(image, 'base64');
        process.stdout.write(JSON.stringify({
          library: 'shipping-ups 0.5.7',
          rate_service: rated.Service.Code,
          rate_total: rated.TotalCharges.MonetaryValue,
          rate_currency: rated.TotalCharges.CurrencyCode,
          confirm_total: confirm.ShipmentCharges.TotalCharges.MonetaryValue,
          confirm_shipment_id: confirm.ShipmentIdentificationNumber || null,
          digest_chars: String(confirm.ShipmentDigest).length,
          shipment_id: results.ShipmentIdentificationNumber,
          tracking_number: pkg.TrackingNumber,
          accept_total: results.ShipmentCharges.TotalCharges.MonetaryValue,
          label_bytes: label.length,
          label_is_gif: label.slice(0, 4).toString('latin1') === 'GIF8',
        }) + '\n');
      } catch (e) {
        return fail('accept (reading the answer)', e);
      }
    });
  });
});
