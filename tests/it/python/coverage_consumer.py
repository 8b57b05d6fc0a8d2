"""The Ministry of Education's client of the fund's contract, in Python
(grpcio): the ministry's certificate, the platform CA, and the jisr-*
metadata, as docs/stacks.md shows. Prints one JSON object per call.

Usage: coverage_consumer.py GENERATED_DIR PKI_DIR GATEWAY [CONSENT_ID]
"""
import json
import sys

import grpc

generated, pki, gateway = sys.argv[1:4]
consent = sys.argv[4] if len(sys.argv) > 4 else None
sys.path.insert(0, generated)
from agencies.socialsecurity.v1 import coverage_pb2, coverage_pb2_grpc  # noqa: E402


def read(name):
    with open(f"{pki}/{name}", "rb") as f:
        return f.read()


creds = grpc.ssl_channel_credentials(
    root_certificates=read("ca.crt"),
    private_key=read("education.key"),
    certificate_chain=read("education.crt"))
channel = grpc.secure_channel(gateway, creds)
stub = coverage_pb2_grpc.CoverageStub(channel)
metadata = [("jisr-purpose", "school-grant"), ("jisr-procedure", "school-grant-2027"),
            ("jisr-official", "education.agent-017")]


def refused(call, e):
    return {"call": call, "code": e.code().name, "message": e.details()}


try:
    status, call = stub.GetCoverage.with_call(
        coverage_pb2.GetCoverageRequest(citizen_id="AB123456"), timeout=10, metadata=metadata)
    headers = dict(call.initial_metadata())
    print(json.dumps({"call": "GetCoverage", "covered": status.covered, "scheme": status.scheme,
                      "valid_until": status.valid_until, "basis": headers.get("jisr-basis")}))
except grpc.RpcError as e:
    print(json.dumps(refused("GetCoverage", e)))

request = coverage_pb2.ListReimbursementsRequest(insured=coverage_pb2.Insured(citizen_id="AB123456"))
with_consent = metadata + ([("jisr-consent", consent)] if consent else [])
try:
    items = stub.ListReimbursements(request, timeout=10, metadata=with_consent)
    acts = [(r.act, r.amount_centimes) for r in items]
    print(json.dumps({"call": "ListReimbursements", "items": acts}))
except grpc.RpcError as e:
    print(json.dumps(refused("ListReimbursements", e)))
