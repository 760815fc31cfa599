"""The ORAS Python client (PyPI `oras`) against Berth, as a user would drive it: log in, push an artifact
whose artifactType is its config's media type, attach a signature to it as a referrer (`subject`), list the
referrers, and pull both back, comparing the files.

Usage: oras_client.py HOST:PORT USERNAME PASSWORD REPOSITORY WORKDIR   (plain HTTP)
"""

import filecmp
import json
import os
import sys

import oras.oci
import oras.provider

ARTIFACT_TYPE = "application/vnd.berth.e2e.report.config.v1+json"
SIGNATURE_TYPE = "application/vnd.berth.e2e.signature.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def main(host, username, password, repository, workdir):
    os.chdir(workdir)
    registry = oras.provider.Registry(hostname=host, insecure=True)
    registry.login(username=username, password=password, hostname=host,
                   config_path=os.path.join(workdir, "docker-config.json"))

    with open("report.txt", "w") as f:
        f.write("a build report pushed with oras-py\n" * 100)
    pushed = registry.push(target=f"{host}/{repository}:v1", files=["report.txt"],
                           manifest_config=f"/dev/null:{ARTIFACT_TYPE}")
    subject_digest = pushed.headers["Docker-Content-Digest"]
    raw = registry.do_request(f"http://{host}/v2/{repository}/manifests/{subject_digest}", "GET",
                              headers={"Accept": MANIFEST_TYPE})
    assert raw.status_code == 200, raw.text
    print(f"pushed {repository}:v1 as {subject_digest}")

    with open("report.sig", "w") as f:
        f.write("signed: " + subject_digest + "\n")
    subject = oras.oci.Subject(mediaType=MANIFEST_TYPE, digest=subject_digest, size=len(raw.content))
    signed = registry.push(target=f"{host}/{repository}:v1-signature", files=["report.sig"],
                           manifest_config=f"/dev/null:{SIGNATURE_TYPE}", subject=subject)
    signature_digest = signed.headers["Docker-Content-Digest"]
    print(f"attached {signature_digest} to it")

    listed = registry.do_request(f"http://{host}/v2/{repository}/referrers/{subject_digest}", "GET")
    assert listed.status_code == 200, listed.text
    referrers = listed.json()["manifests"]
    found = [(r["digest"], r.get("artifactType")) for r in referrers]
    assert found == [(signature_digest, SIGNATURE_TYPE)], found
    print(f"referrers of {subject_digest}: {json.dumps(found)}")

    for ref, name in [(f"{repository}:v1", "report.txt"), (f"{repository}@{signature_digest}", "report.sig")]:
        outdir = os.path.join(workdir, "pulled", name)
        files = registry.pull(target=f"{host}/{ref}", outdir=outdir)
        assert [os.path.basename(f) for f in files] == [name], files
        assert filecmp.cmp(os.path.join(outdir, name), name, shallow=False), f"{name} differs"
        print(f"pulled {ref}: {name} identical")


if __name__ == "__main__":
    main(*sys.argv[1:6])
