# Images of aad-pod-identity (one static binary, two roles), made from a binary built beforehand:
#   meson setup build-release --buildtype=release && ninja -C build-release app/aad-pod-identity
#   buildah build --target mic -t aad-pod-identity-mic:0.1.0 .     # or: docker build ...
#   buildah build --target nmi -t aad-pod-identity-nmi:0.1.0 .
# nmi: Debian 12 slim with iptables and conntrack, which NMI runs on the node; `iptables` is
#      tools/image/iptables-wrapper, which picks the backend (legacy or nft) the node already uses.
#      DEBIAN_IMAGE: any Debian 12 image with working apt sources (the tests use one made with
#      mmdebstrap, which unlike the official image keeps apt's caches: hence `apt-get clean`).
# mic: the binary and the CA certificates on an empty base, user 65532 (the manifests run it as
#      user 0 only to read the node's root-owned azure.json).
# CERTS_IMAGE: any image with /etc/ssl/certs/ca-certificates.crt and /etc/nsswitch.conf.
ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG CERTS_IMAGE=${DEBIAN_IMAGE}

FROM ${DEBIAN_IMAGE} AS nmi
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables conntrack ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY tools/image/iptables-wrapper /usr/sbin/iptables-wrapper
RUN /usr/sbin/iptables-wrapper --install
COPY build-release/app/aad-pod-identity /usr/local/bin/aad-pod-identity
ENTRYPOINT ["/usr/local/bin/aad-pod-identity", "--role=nmi"]

FROM ${CERTS_IMAGE} AS certs

FROM scratch AS mic
COPY --from=certs /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=certs /etc/nsswitch.conf /etc/nsswitch.conf
COPY build-release/app/aad-pod-identity /aad-pod-identity
USER 65532:65532
ENTRYPOINT ["/aad-pod-identity", "--role=mic"]
