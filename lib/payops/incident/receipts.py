"""The receipts bucket (S3 or an S3-compatible server, by ``PAYOPS_S3_ENDPOINT_URL``), through ``boto3``.

Layout (the checkout backend's contract): for each paid Checkout Session, under ``PAYOPS_S3_RECEIPTS_PREFIX``::

    {prefix}{session_id}.pdf    the receipt (application/pdf)
    {prefix}{session_id}.json   its record: {"session_id", "auction_id", "customer_email", "amount",
                                "currency", "status": "issued" | "error", "error", "issued_at",
                                "download_url", "pdf_sha256"}

``download_url`` is what the customer is given: a presigned GET of the PDF, valid ``PAYOPS_RECEIPT_URL_TTL``.

Contract:

1. Reading never changes the bucket; a missing record or PDF is a finding, not an error.
2. A download URL is checked the way the customer's browser would use it (a plain HTTP GET, no
   credentials): 200 with the PDF whose sha256 is in the record is good; 403 is the incident's symptom.
3. ``issue`` (regenerate) renders the receipt from the Checkout Session, uploads the PDF, presigns a fresh
   URL and then writes the record — the record last, so a half-done regeneration still reads as broken.
4. An endpoint that does not answer, or a bucket that cannot be reached with the configured credentials,
   is ``ServiceUnreachable`` naming the bucket and endpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from payops.config import Settings
from payops.incident.services import unreachable
from payops.money import Money, MoneyError


@dataclass(frozen=True)
class UrlCheck:
    url: str | None
    status: int | None  # HTTP status; None: no URL or no answer
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"url": _short_url(self.url), "status": self.status, "ok": self.ok, "detail": self.detail}


def _short_url(url: str | None) -> str | None:
    """A download URL without its signature query (the signature is a credential for that object)."""
    return url.split("?", 1)[0] + ("?…" if "?" in url else "") if url else url


def render_pdf(lines: list[str]) -> bytes:
    """A one-page PDF (Helvetica, one line of text each) — a real receipt document, no dependency."""
    def esc(text: str) -> str:
        return text.encode("latin-1", "replace").decode("latin-1").replace("\\", "\\\\").replace(
            "(", "\\(").replace(")", "\\)")

    stream = "BT /F1 12 Tf 72 760 Td 16 TL " + " ".join(f"({esc(t)}) Tj T*" for t in lines) + " ET"
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
               "/Contents 5 0 R >>", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream"]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def receipt_lines(session: dict[str, Any]) -> list[str]:
    try:
        amount = Money.from_stripe(int(session["amount_total"]), str(session["currency"]).upper()).format()
    except (MoneyError, KeyError, TypeError, ValueError):
        amount = f"{session.get('amount_total')} {session.get('currency')}"
    meta = session.get("metadata") or {}
    email = (session.get("customer_details") or {}).get("email") or session.get("customer_email") or ""
    return ["Receipt", f"Checkout Session {session['id']}", f"Auction {meta.get('auction_id', '-')}",
            f"Amount paid {amount}", f"Customer {email}",
            f"Paid {datetime.fromtimestamp(int(session['created']), UTC):%Y-%m-%d %H:%M} UTC"]


class ReceiptStore:
    """The bucket adapter."""

    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        self.settings = settings
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_receipts_prefix
        self.endpoint = settings.s3_endpoint_url or f"https://s3.{settings.s3_region}.amazonaws.com"
        timeout = settings.service_timeout_seconds
        secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
        self.s3 = boto3.client(
            "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id, aws_secret_access_key=secret,
            config=Config(signature_version="s3v4", connect_timeout=timeout, read_timeout=timeout,
                          retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": "path"}))

    @contextmanager
    def _talking(self, doing: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchBucket", "AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise unreachable(f"S3 bucket {self.bucket!r}", self.endpoint, exc, doing) from exc
            raise
        except BotoCoreError as exc:  # endpoint not answering, credentials missing, timeouts
            raise unreachable(f"S3 bucket {self.bucket!r}", self.endpoint, exc, doing) from exc

    def key(self, session_id: str, ext: str) -> str:
        return f"{self.prefix}{session_id}.{ext}"

    def check_bucket(self) -> None:
        with self._talking("reaching the receipts bucket"):
            self.s3.head_bucket(Bucket=self.bucket)

    def record(self, session_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with self._talking(f"reading the receipt record of {session_id}"):
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=self.key(session_id, "json"))["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
        try:
            doc = json.loads(body)
        except ValueError:
            return {"session_id": session_id, "status": "error", "error": "the record is not JSON"}
        return doc if isinstance(doc, dict) else {"session_id": session_id, "status": "error",
                                                  "error": "the record is not a JSON object"}

    def pdf_size(self, session_id: str) -> int | None:
        from botocore.exceptions import ClientError

        with self._talking(f"reading the receipt of {session_id}"):
            try:
                return int(self.s3.head_object(Bucket=self.bucket, Key=self.key(session_id, "pdf"))["ContentLength"])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                    return None
                raise

    def latest_records(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest receipt records in the bucket (by last modified), newest first."""
        with self._talking("listing the receipts"):
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"MaxItems": 5000})
            objs = [o for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".json")]
        objs.sort(key=lambda o: o["LastModified"], reverse=True)
        out = []
        for o in objs[:limit]:
            rec = self.record(o["Key"][len(self.prefix):-len(".json")])
            if rec is not None:
                out.append(rec)
        return out

    def check_url(self, url: str | None, want_sha256: str | None = None) -> UrlCheck:
        """GET the download URL like the customer's browser: 200 + the recorded PDF, or the symptom."""
        import httpx

        if not url:
            return UrlCheck(url, None, False, "no download URL in the record")
        try:
            resp = httpx.get(url, timeout=self.settings.service_timeout_seconds, follow_redirects=True)
        except httpx.HTTPError as exc:
            return UrlCheck(url, None, False, f"no answer: {type(exc).__name__}: {exc}")
        if resp.status_code != 200:
            return UrlCheck(url, resp.status_code, False, f"HTTP {resp.status_code} (the customer cannot "
                                                           "download the receipt)")
        body = resp.content
        if not body.startswith(b"%PDF"):
            return UrlCheck(url, 200, False, "HTTP 200 but not a PDF")
        if want_sha256 and hashlib.sha256(body).hexdigest() != want_sha256:
            return UrlCheck(url, 200, False, "HTTP 200 but not the PDF the record names (sha256 differs)")
        return UrlCheck(url, 200, True, f"HTTP 200, PDF {len(body):,} bytes")

    def presign(self, session_id: str) -> str:
        return str(self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket,
                                                                        "Key": self.key(session_id, "pdf")},
                                                  ExpiresIn=self.settings.receipt_url_ttl_seconds))

    def issue(self, session: dict[str, Any], *, issued_by: str = "payops") -> dict[str, Any]:
        """Render, upload and record the receipt of a paid session (step 3 of the contract)."""
        sid = session["id"]
        pdf = render_pdf(receipt_lines(session))
        digest = hashlib.sha256(pdf).hexdigest()
        meta = session.get("metadata") or {}
        with self._talking(f"writing the receipt of {sid}"):
            self.s3.put_object(Bucket=self.bucket, Key=self.key(sid, "pdf"), Body=pdf, ContentType="application/pdf",
                               Metadata={"session-id": sid, "sha256": digest})
            record = {"session_id": sid, "auction_id": meta.get("auction_id"),
                      "customer_email": (session.get("customer_details") or {}).get("email")
                      or session.get("customer_email"),
                      "amount": session.get("amount_total"), "currency": session.get("currency"), "status": "issued",
                      "error": None, "issued_at": datetime.now(UTC).isoformat(timespec="seconds"),
                      "issued_by": issued_by, "download_url": self.presign(sid), "pdf_sha256": digest}
            self.write_record(record)
        return record

    def write_record(self, record: dict[str, Any]) -> None:
        with self._talking(f"writing the receipt record of {record['session_id']}"):
            self.s3.put_object(Bucket=self.bucket, Key=self.key(str(record["session_id"]), "json"),
                               Body=json.dumps(record, sort_keys=True).encode(), ContentType="application/json")
