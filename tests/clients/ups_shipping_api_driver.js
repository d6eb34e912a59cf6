#!/usr/bin/env node
// Drive ups-shipping-api 1.0.0 (npm, uladkasach 2018; legacy JSON at /json/<Svc> with a
// "UPSSecurity" member) through a base URL.
//
//     node ups_shipping_api_driver.js BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER
//
// Performs a rate (`ups.retreive_rates`, POST /json/Rate, RequestOption "Shop"), the library's
// only call (it has no ship or track), and reads the RatedShipment list it returns. Public API
// only. Prints one JSON line with what the library returned; exit 1 with its error otherwise.
//
// No runtime shim. Base URL: the library sends through an `api-request-simple` 1.3.1 instance
// it keeps as `ups.api.api`, whose public `hosts.default` is "onlinetools.ups.com/json" (with
// live: true) and whose `defaults.ssl` is true; the driver sets `hosts.default` to BASE_URL's
// host:port + "/json" and `defaults.ssl` to false (plain http to the test proxy). The path
// (/json/Rate) and body are the library's own.
'use strict';

const UPS = require('ups-shipping-api');

const [base, accessKey, userId, password, shipperNumber] = process.argv.slice(2, 7);
const target = new URL(base);

const ups = new UPS({ live: true, access_key: accessKey, username: userId, password: password });
// Given UPS's own URL (a hosts file or HTTPS_PROXY points it at upsbridge): nothing adjusted.
if (!require('./redirect_https').isUps(target)) {
  ups.api.api.hosts.default = `${target.host}/json`;
  ups.api.api.defaults.ssl = target.protocol === 'https:';
}

function first(x) { return Array.isArray(x) ? x[0] : x; }

(async () => {
  let rates;
  try {
    rates = await ups.retreive_rates({
      shipper: {
        name: 'East Warehouse',
        shipping_number: shipperNumber,
        address: { lines: ['10 Elm Rd'], city: 'Dover', state: 'DE', postal_code: 19901, country_code: 'US' },
      },
      ship_to: {
        name: 'Acme Corp',
        address: { lines: ['5 Oak Ave'], city: 'Reno', state: 'NV', postal_code: 89501, country_code: 'US' },
      },
      package: { weight: 3, packaging_type_code: '02', dimensions: { length: 10, width: 8, height: 4 } },
    });
  } catch (e) {
    let body = e && e.error !== undefined ? JSON.stringify(e.error) : '';
    process.stderr.write(`ups-shipping-api retreive_rates failed: ${e && e.stack || e}\nanswer: ${body}\n`);
    process.exit(1);
  }
  try {
    const list = Array.isArray(rates) ? rates : [rates];
    const ground = list.find((r) => r && r.Service && r.Service.Code === '03');
    process.stdout.write(JSON.stringify({
      library: 'ups-shipping-api 1.0.0',
      rate_count: list.length,
      rate_services: list.map((r) => r.Service.Code),
      rate_service: ground ? ground.Service.Code : null,
      rate_total: ground ? ground.TotalCharges.MonetaryValue : null,
      rate_currency: ground ? ground.TotalCharges.CurrencyCode : null,
      rate_billing_weight: ground ? first(ground.BillingWeight).Weight : null,
    }) + '\n');
  } catch (e) {
    process.stderr.write(`ups-shipping-api (reading the answer) failed: ${e.stack}\nanswer: ${JSON.stringify(rates)}\n`);
    process.exit(1);
  }
})();
