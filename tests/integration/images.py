"""An OCI image of the busybox rootfs, made here (no registry is reachable), for the tests that drive
pyrun through containerd and podman."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

IMAGE = "docker.io/library/pyrun-busybox:latest"
# A pod's sandbox ("pause") container for the CRI tests: the busybox image sleeping for ever.
PAUSE_IMAGE = "docker.io/library/pyrun-pause:latest"
PAUSE_CMD = ["sleep", "2147483647"]


def oci_image_tar(rootfs: str, out: str, name: str = IMAGE, cmd=("sh",)) -> None:
    """An OCI image layout (one uncompressed layer) in a tar, as `ctr images import` takes it."""
    blobs = {}

    def blob(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        t.add(rootfs, arcname=".")
    layer = layer.getvalue()
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": list(cmd), "Env": ["PATH=/bin"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
                "layers": [blob(layer, "application/vnd.oci.image.layer.v1.tar")]}
    desc = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    desc["annotations"] = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"}
    with tarfile.open(out, "w") as t:
        def put(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        put("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        put("index.json", json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode())
        for digest, data in blobs.items():
            put("blobs/sha256/" + digest, data)
