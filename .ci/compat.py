"""Compatibility checks with real clients: boto3, aws-cli, s3cmd and rclone on
the S3 port, schemathesis on the JSON API.

Starts the cistern binary given as argv[1] on free loopback ports with a
temporary data directory, runs each client against it, and exits non-zero
on the first failure. Prints 'N passed, N failed' at the end.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

USER, PASSWORD = "compat-admin", "compat-password-123"
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, env=None, **kw):
    merged = dict(os.environ, **(env or {}))
    result = subprocess.run(args, env=merged, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def make_tree(root, seed):
    files = {
        "a.txt": b"alpha\n" * 100,
        "dir/b.bin": bytes(range(256)) * 4000,
        "dir/sub/c with space.txt": b"gamma",
        "dir/sub/ünïcode.txt": b"delta" * 10,
        "big.bin": hashlib.sha256(seed).digest() * (9 * 1024 * 1024 // 32),
    }
    for name, data in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return files


def same_tree(a, b):
    result = subprocess.run(["diff", "-r", a, b], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@check
def boto3_everyday(ctx):
    s3 = ctx["boto3"]
    s3.create_bucket(Bucket="boto")
    s3.put_object(Bucket="boto", Key="hello.txt", Body=b"hello", ContentType="text/plain", Metadata={"k": "v"})
    got = s3.get_object(Bucket="boto", Key="hello.txt")
    assert got["Body"].read() == b"hello"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"k": "v"}
    assert s3.get_object(Bucket="boto", Key="hello.txt", Range="bytes=1-3")["Body"].read() == b"ell"
    for key in ["x 1", "x+2", "y/ü"]:
        s3.put_object(Bucket="boto", Key=key, Body=b"x")
    # Asked for explicitly, url encoding reaches the caller as S3 sends it.
    listed = s3.list_objects_v2(Bucket="boto", EncodingType="url")
    assert [o["Key"] for o in listed["Contents"]] == ["hello.txt", "x+1", "x%2B2", "y/%C3%BC"], listed["Contents"]
    # Added by botocore itself (v1), it is decoded again.
    listed = s3.list_objects(Bucket="boto")
    assert [o["Key"] for o in listed["Contents"]] == ["hello.txt", "x 1", "x+2", "y/ü"], listed["Contents"]
    listed = s3.list_objects(Bucket="boto", Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["y/"]
    s3.copy_object(Bucket="boto", Key="copy.txt", CopySource={"Bucket": "boto", "Key": "hello.txt"})
    assert s3.get_object(Bucket="boto", Key="copy.txt")["Body"].read() == b"hello"
    out = s3.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": "x 1"}, {"Key": "x+2"}]})
    assert len(out["Deleted"]) == 2
    try:
        s3.get_object(Bucket="boto", Key="x 1")
        raise AssertionError("deleted key still readable")
    except s3.exceptions.NoSuchKey:
        pass
    # A managed transfer: multipart with 5 MiB parts.
    data = os.urandom(12 * 1024 * 1024)
    src = os.path.join(ctx["tmp"], "mp.bin")
    with open(src, "wb") as f:
        f.write(data)
    from boto3.s3.transfer import TransferConfig
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(src, "boto", "mp.bin", Config=cfg)
    head = s3.head_object(Bucket="boto", Key="mp.bin")
    assert head["ETag"].endswith('-3"'), head["ETag"]
    dst = os.path.join(ctx["tmp"], "mp.out")
    s3.download_file("boto", "mp.bin", dst, Config=cfg)
    assert open(dst, "rb").read() == data


@check
def boto3_presigned_plain_http(ctx):
    s3 = ctx["boto3"]
    s3.create_bucket(Bucket="presign")
    s3.put_object(Bucket="presign", Key="p.txt", Body=b"presigned body")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "presign", "Key": "p.txt"}, ExpiresIn=60)
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"presigned body"


@check
def awscli_s3_commands(ctx):
    aws = ctx["aws"]
    tree = os.path.join(ctx["tmp"], "awstree")
    make_tree(tree, b"aws")
    run(aws + ["s3", "mb", "s3://awscli"])
    run(aws + ["s3", "cp", os.path.join(tree, "a.txt"), "s3://awscli/single/a.txt"])
    run(aws + ["s3", "sync", tree, "s3://awscli/tree"])
    listing = run(aws + ["s3", "ls", "--recursive", "s3://awscli/tree/"])
    assert "dir/sub/c with space.txt" in listing and "big.bin" in listing, listing
    back = os.path.join(ctx["tmp"], "awsback")
    run(aws + ["s3", "sync", "s3://awscli/tree", back])
    same_tree(tree, back)
    run(aws + ["s3", "cp", "s3://awscli/single/a.txt", os.path.join(ctx["tmp"], "a.copy")])
    run(aws + ["s3", "rm", "--recursive", "s3://awscli/"])
    assert run(aws + ["s3", "ls", "s3://awscli/"]).strip() == ""
    run(aws + ["s3", "rb", "s3://awscli"])


@check
def awscli_sync_with_empty_files(ctx):
    # The botocore that pip's aws-cli bundles stalls 60 s per connection
    # after an empty PUT answered without `100 Continue`; a tree of 200
    # files, half of them empty, must go up in seconds.
    aws = ctx["aws"]
    tree = os.path.join(ctx["tmp"], "emptytree")
    os.makedirs(tree)
    for i in range(100):
        open(os.path.join(tree, f"empty-{i:03}"), "wb").close()
        with open(os.path.join(tree, f"small-{i:03}"), "wb") as f:
            f.write(b"x" * (i + 1))
    run(aws + ["s3", "mb", "s3://emptysync"])
    started = time.monotonic()
    run(aws + ["s3", "sync", "--only-show-errors", tree, "s3://emptysync/t"])
    took = time.monotonic() - started
    listing = run(aws + ["s3", "ls", "--recursive", "s3://emptysync/t/"])
    assert len(listing.strip().splitlines()) == 200, listing
    assert took < 30, f"aws s3 sync of 200 files took {took:.1f} s"
    print(f"    aws s3 sync, 200 files (100 empty): {took:.1f} s")
    run(aws + ["s3", "rm", "--recursive", "--only-show-errors", "s3://emptysync/"])
    run(aws + ["s3", "rb", "s3://emptysync"])


@check
def awscli_s3api_multipart(ctx):
    aws = ctx["aws"]
    run(aws + ["s3api", "create-bucket", "--bucket", "api"])
    upload = json.loads(run(aws + ["s3api", "create-multipart-upload", "--bucket", "api", "--key", "m.bin"]))["UploadId"]
    parts = []
    for number, size in [(1, 5 * 1024 * 1024), (2, 1000)]:
        path = os.path.join(ctx["tmp"], f"part{number}")
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        out = json.loads(run(aws + ["s3api", "upload-part", "--bucket", "api", "--key", "m.bin",
                                    "--part-number", str(number), "--upload-id", upload, "--body", path]))
        parts.append({"PartNumber": number, "ETag": out["ETag"]})
    listed = json.loads(run(aws + ["s3api", "list-parts", "--bucket", "api", "--key", "m.bin", "--upload-id", upload]))
    assert len(listed["Parts"]) == 2
    done = json.loads(run(aws + ["s3api", "complete-multipart-upload", "--bucket", "api", "--key", "m.bin",
                                 "--upload-id", upload, "--multipart-upload", json.dumps({"Parts": parts})]))
    assert done["ETag"].endswith('-2"'), done
    head = json.loads(run(aws + ["s3api", "head-object", "--bucket", "api", "--key", "m.bin"]))
    assert head["ContentLength"] == 5 * 1024 * 1024 + 1000
    url = run(aws + ["s3", "presign", "s3://api/m.bin", "--expires-in", "60"]).strip()
    with urllib.request.urlopen(url) as response:
        assert len(response.read()) == 5 * 1024 * 1024 + 1000


def s3cmd_round_trip(ctx, s3cmd, bucket):
    src = os.path.join(ctx["tmp"], f"{bucket}.txt")
    with open(src, "wb") as f:
        f.write(b"s3cmd payload\n" * 1000)
    run(s3cmd + ["mb", f"s3://{bucket}"])
    run(s3cmd + ["put", src, f"s3://{bucket}/dir/file.txt"])
    assert f"s3://{bucket}/dir/file.txt" in run(s3cmd + ["ls", "--recursive", f"s3://{bucket}"])
    assert f"s3://{bucket}" in run(s3cmd + ["ls"])
    dst = os.path.join(ctx["tmp"], f"{bucket}.out")
    run(s3cmd + ["get", f"s3://{bucket}/dir/file.txt", dst])
    assert open(dst, "rb").read() == open(src, "rb").read()
    run(s3cmd + ["del", f"s3://{bucket}/dir/file.txt"])
    assert "file.txt" not in run(s3cmd + ["ls", "--recursive", f"s3://{bucket}"])


@check
def s3cmd_put_get_ls_del(ctx):
    s3cmd_round_trip(ctx, ctx["s3cmd"], "s3cmd")


@check
def s3cmd_with_the_readme_config(ctx):
    """Only what README.md tells people to put in ~/.s3cfg: s3cmd then signs
    bucket creation and listing for its default region `US`."""
    s3cmd_round_trip(ctx, ctx["s3cmd_readme"], "s3cmd-readme")


@check
def rclone_sync_up_and_back(ctx):
    if shutil.which("rclone") is None:
        raise AssertionError("rclone is not installed")
    env = ctx["rclone_env"]
    tree = os.path.join(ctx["tmp"], "rctree")
    make_tree(tree, b"rclone")
    run(["rclone", "mkdir", "cis:rclone"], env=env)
    run(["rclone", "sync", tree, "cis:rclone/tree"], env=env)
    back = os.path.join(ctx["tmp"], "rcback")
    run(["rclone", "sync", "cis:rclone/tree", back], env=env)
    same_tree(tree, back)
    run(["rclone", "check", tree, "cis:rclone/tree"], env=env)
    os.remove(os.path.join(tree, "a.txt"))
    run(["rclone", "sync", tree, "cis:rclone/tree"], env=env)
    assert "a.txt" not in run(["rclone", "lsf", "-R", "cis:rclone/tree"], env=env)


@check
def rclone_purge_says_nothing(ctx):
    """rclone purge asks whether the bucket is versioned; the answer
    (unversioned) must not be an error it prints."""
    env = ctx["rclone_env"]
    src = os.path.join(ctx["tmp"], "purge.txt")
    with open(src, "wb") as f:
        f.write(b"purge me\n")
    run(["rclone", "mkdir", "cis:purge"], env=env)
    for target in ["cis:purge", "cis:purge/dir", "cis:purge/dir/sub"]:
        run(["rclone", "copy", src, target], env=env)
    result = subprocess.run(["rclone", "purge", "cis:purge"], env=dict(os.environ, **env),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr, result.stderr
    assert "purge" not in run(["rclone", "lsd", "cis:"], env=env)


@check
def api_schemathesis(ctx):
    """The JSON API against its own OpenAPI document: schemathesis generates
    requests from it; no answer may be a 5xx, and every answer must match the
    documented statuses, content types, headers and schemas. Runs last: the
    fuzzer acts as an admin and changes users, quotas and buckets."""
    api = f"http://127.0.0.1:{ctx['web_port']}/api/v1"

    def call(method, path, body=None, token=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(api + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request) as r:
            text = r.read()
            return json.loads(text) if text else None

    token = call("POST", "/auth/login", {"name": USER, "password": PASSWORD})["token"]
    # The examples in the document name these, so generated requests reach
    # real rows as well as missing ones.
    call("POST", "/users", {"name": "alice", "password": "alice-password-1"}, token)
    call("POST", "/buckets", {"name": "photos"}, token)
    call("PUT", "/buckets/photos/objects/2026/cat.txt", token=token, raw=b"meow")
    schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    run([schemathesis, "--no-color", "run", f"{api}/openapi.json",
         "--header", f"Authorization: Bearer {token}",
         # Logging out would end the session the run authenticates with;
         # the event stream never ends (tests/it/pools.rs covers it).
         "--exclude-path", "/api/v1/auth/logout",
         "--exclude-path", "/api/v1/events",
         "--request-timeout", "30",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_headers_conformance,response_schema_conformance",
         "--max-examples", "25", "--seed", "1"])
    with urllib.request.urlopen(f"http://127.0.0.1:{ctx['web_port']}/health/ready") as r:
        assert r.status == 200


def main():
    binary = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="cistern-compat-")
    s3_port, web_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{s3_port}"
    log = open(os.path.join(tmp, "server.log"), "w")
    server = subprocess.Popen(
        [binary, "serve", "--data-dir", os.path.join(tmp, "data"),
         "--s3-listen", f"127.0.0.1:{s3_port}", "--web-listen", f"127.0.0.1:{web_port}"],
        env=dict(os.environ, CISTERN_ROOT_USER=USER, CISTERN_ROOT_PASSWORD=PASSWORD),
        stdout=log, stderr=log)
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/health/ready") as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline or server.poll() is not None:
            raise SystemExit("cistern did not become ready")
        time.sleep(0.1)

    s3cfg = os.path.join(tmp, "s3cfg")
    with open(s3cfg, "w") as f:
        f.write(f"[default]\naccess_key = {USER}\nsecret_key = {PASSWORD}\nhost_base = 127.0.0.1:{s3_port}\n"
                f"host_bucket = 127.0.0.1:{s3_port}\nuse_https = False\nsignature_v2 = False\n"
                "bucket_location = us-east-1\n")
    # README.md's s3cmd settings, and nothing else.
    s3cfg_readme = os.path.join(tmp, "s3cfg-readme")
    with open(s3cfg_readme, "w") as f:
        f.write(f"[default]\naccess_key = {USER}\nsecret_key = {PASSWORD}\nhost_base = 127.0.0.1:{s3_port}\n"
                f"host_bucket = 127.0.0.1:{s3_port}\nuse_https = False\n")
    # Plain-HTTP endpoints need no CA bundle, and rclone refuses to start
    # with one set for its custom transport.
    os.environ.pop("AWS_CA_BUNDLE", None)
    os.environ.update(AWS_ACCESS_KEY_ID=USER, AWS_SECRET_ACCESS_KEY=PASSWORD, AWS_DEFAULT_REGION="us-east-1")
    bin_dir = os.path.dirname(sys.executable)
    ctx = {
        "tmp": tmp,
        "web_port": web_port,
        "boto3": boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=USER, aws_secret_access_key=PASSWORD,
                              region_name="us-east-1", config=Config(s3={"addressing_style": "path"})),
        "aws": [os.path.join(bin_dir, "aws"), "--endpoint-url", endpoint],
        "s3cmd": [os.path.join(bin_dir, "s3cmd"), "-c", s3cfg],
        "s3cmd_readme": [os.path.join(bin_dir, "s3cmd"), "-c", s3cfg_readme],
        "rclone_env": {
            "RCLONE_CONFIG_CIS_TYPE": "s3", "RCLONE_CONFIG_CIS_PROVIDER": "Other",
            "RCLONE_CONFIG_CIS_ACCESS_KEY_ID": USER, "RCLONE_CONFIG_CIS_SECRET_ACCESS_KEY": PASSWORD,
            "RCLONE_CONFIG_CIS_ENDPOINT": endpoint, "RCLONE_CONFIG_CIS_REGION": "us-east-1",
        },
    }
    passed = failed = 0
    try:
        for fn in CHECKS:
            try:
                fn(ctx)
                passed += 1
                print(f"ok   {fn.__name__}")
            except Exception as e:  # report every check, then fail
                failed += 1
                print(f"FAIL {fn.__name__}: {e!r}")
    finally:
        server.terminate()
        code = server.wait(timeout=30)
        if code != 0:
            failed += 1
            print(f"FAIL server exited {code} on SIGTERM")
        log.close()
    if failed:
        print(open(os.path.join(tmp, "server.log")).read()[-5000:])
    print(f"compat: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
