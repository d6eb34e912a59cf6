#!/usr/bin/env python3
"""A tiny stand-in for old UPS that records exactly what a legacy client sends.

    capture_server.py OUT_DIR

Listens on 127.0.0.1 (ephemeral port), prints `listening on http://127.0.0.1:PORT`
as its first stdout line, and for every request writes `OUT_DIR/NNN.http`: the
request line, the header lines and the body bytes exactly as they arrived on the
socket (nothing is parsed and re-serialised). It answers with a plausible canned
UPS response (old XML or SOAP, chosen by path) so the client proceeds to its next
step, then closes the connection. Stop it with SIGTERM.

Used by `capture.sh` to (re)make tests/fixtures/clients/*.http; not by the Rust tests.
"""
import os
import socket
import socketserver
import sys

GIF = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"  # 1x1 GIF
TN = "1Z9Y9Y9Y0300000001"
DIGEST = "CAPTURE-DIGEST-0001"


def money(v):
    return f"<CurrencyCode>USD</CurrencyCode><MonetaryValue>{v}</MonetaryValue>"


XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
XML_OK = "<ResponseStatusCode>1</ResponseStatusCode><ResponseStatusDescription>Success</ResponseStatusDescription>"

CANNED = {
    "/ups.app/xml/Rate": XML_HEAD
    + "<RatingServiceSelectionResponse><Response>" + XML_OK + "</Response>"
    "<RatedShipment><Service><Code>03</Code></Service>"
    "<BillingWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>3.0</Weight></BillingWeight>"
    f"<TransportationCharges>{money('12.34')}</TransportationCharges>"
    f"<ServiceOptionsCharges>{money('0.00')}</ServiceOptionsCharges>"
    f"<TotalCharges>{money('12.34')}</TotalCharges>"
    "<GuaranteedDaysToDelivery/><ScheduledDeliveryTime/>"
    "</RatedShipment></RatingServiceSelectionResponse>",
    "/ups.app/xml/ShipConfirm": XML_HEAD
    + "<ShipmentConfirmResponse><Response><TransactionReference><CustomerContext>get new shipment</CustomerContext>"
    "<XpciVersion>1.0001</XpciVersion></TransactionReference>" + XML_OK + "</Response>"
    f"<ShipmentCharges><TransportationCharges>{money('12.34')}</TransportationCharges>"
    f"<ServiceOptionsCharges>{money('0.00')}</ServiceOptionsCharges><TotalCharges>{money('12.34')}</TotalCharges></ShipmentCharges>"
    "<BillingWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>3.0</Weight></BillingWeight>"
    f"<ShipmentIdentificationNumber>{TN}</ShipmentIdentificationNumber><ShipmentDigest>{DIGEST}</ShipmentDigest>"
    "</ShipmentConfirmResponse>",
    "/ups.app/xml/ShipAccept": XML_HEAD
    + "<ShipmentAcceptResponse><Response><TransactionReference><CustomerContext>shipment accept reference</CustomerContext>"
    "<XpciVersion>1.0001</XpciVersion></TransactionReference>" + XML_OK + "</Response><ShipmentResults>"
    f"<ShipmentCharges><TransportationCharges>{money('12.34')}</TransportationCharges>"
    f"<ServiceOptionsCharges>{money('0.00')}</ServiceOptionsCharges><TotalCharges>{money('12.34')}</TotalCharges></ShipmentCharges>"
    "<BillingWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>3.0</Weight></BillingWeight>"
    f"<ShipmentIdentificationNumber>{TN}</ShipmentIdentificationNumber>"
    f"<PackageResults><TrackingNumber>{TN}</TrackingNumber><ServiceOptionsCharges>{money('0.00')}</ServiceOptionsCharges>"
    f"<LabelImage><LabelImageFormat><Code>GIF</Code></LabelImageFormat><GraphicImage>{GIF}</GraphicImage></LabelImage>"
    "</PackageResults></ShipmentResults></ShipmentAcceptResponse>",
}

SOAP_NS = (
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:common="http://www.ups.com/XMLSchema/XOLTWS/Common/v1.0"'
)
SOAP_OK = "<common:Response><common:ResponseStatus><common:Code>1</common:Code><common:Description>Success</common:Description></common:ResponseStatus></common:Response>"


def soap(body):
    return f'<soapenv:Envelope {SOAP_NS}><soapenv:Header/><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>'


def smoney(p, v):
    return f"<{p}:CurrencyCode>USD</{p}:CurrencyCode><{p}:MonetaryValue>{v}</{p}:MonetaryValue>"


CANNED["/webservices/Rate"] = soap(
    '<rate:RateResponse xmlns:rate="http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1">' + SOAP_OK
    + "<rate:RatedShipment><rate:Service><rate:Code>03</rate:Code><rate:Description>UPS Ground</rate:Description></rate:Service>"
    "<rate:BillingWeight><rate:UnitOfMeasurement><rate:Code>LBS</rate:Code></rate:UnitOfMeasurement><rate:Weight>3.0</rate:Weight></rate:BillingWeight>"
    f"<rate:TransportationCharges>{smoney('rate', '12.34')}</rate:TransportationCharges>"
    f"<rate:ServiceOptionsCharges>{smoney('rate', '0.00')}</rate:ServiceOptionsCharges>"
    f"<rate:TotalCharges>{smoney('rate', '12.34')}</rate:TotalCharges>"
    "</rate:RatedShipment></rate:RateResponse>"
)
CANNED["/webservices/Ship"] = soap(
    '<ship:ShipmentResponse xmlns:ship="http://www.ups.com/XMLSchema/XOLTWS/Ship/v1.0">' + SOAP_OK
    + "<ship:ShipmentResults><ship:ShipmentCharges>"
    f"<ship:TransportationCharges>{smoney('ship', '12.34')}</ship:TransportationCharges>"
    f"<ship:ServiceOptionsCharges>{smoney('ship', '0.00')}</ship:ServiceOptionsCharges>"
    f"<ship:TotalCharges>{smoney('ship', '12.34')}</ship:TotalCharges></ship:ShipmentCharges>"
    "<ship:BillingWeight><ship:UnitOfMeasurement><ship:Code>LBS</ship:Code></ship:UnitOfMeasurement><ship:Weight>3.0</ship:Weight></ship:BillingWeight>"
    f"<ship:ShipmentIdentificationNumber>{TN}</ship:ShipmentIdentificationNumber>"
    f"<ship:PackageResults><ship:TrackingNumber>{TN}</ship:TrackingNumber>"
    f"<ship:ServiceOptionsCharges>{smoney('ship', '0.00')}</ship:ServiceOptionsCharges>"
    "<ship:ShippingLabel><ship:ImageFormat><ship:Code>GIF</ship:Code><ship:Description>GIF</ship:Description></ship:ImageFormat>"
    f"<ship:GraphicImage>{GIF}</ship:GraphicImage></ship:ShippingLabel></ship:PackageResults>"
    "</ship:ShipmentResults></ship:ShipmentResponse>"
)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        raw = b""
        while b"\r\n\r\n" not in raw and b"\n\n" not in raw:
            chunk = self.connection.recv(65536)
            if not chunk:
                return
            raw += chunk
        sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
        head, _, rest = raw.partition(sep)
        lines = head.split(b"\r\n") if sep == b"\r\n\r\n" else head.split(b"\n")
        request_line = lines[0].decode("latin-1")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        body = rest
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(body) < n:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                body += chunk
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while not body.endswith(b"0\r\n\r\n"):
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                body += chunk
        out = self.server.out_dir
        n = len([f for f in os.listdir(out) if f.endswith(".http")]) + 1
        with open(os.path.join(out, f"{n:03}.http"), "wb") as f:
            f.write(head + sep + body)
        path = request_line.split(" ")[1] if " " in request_line else "/"
        answer = CANNED.get(path.split("?")[0])
        status = "200 OK"
        if answer is None:
            status, answer = "404 Not Found", "<html><body>not found</body></html>"
        ctype = "text/xml; charset=utf-8" if path.startswith("/webservices/") else "application/xml"
        data = answer.encode()
        self.connection.sendall(
            f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + data
        )
        self.connection.shutdown(socket.SHUT_WR)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.out_dir = out
    print(f"listening on http://127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
