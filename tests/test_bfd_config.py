"""bfd_instance and track_bfd as keepalived 2.2.7 reads them (bfd_parser.c, vrrp_track.c)."""

from __future__ import annotations

import ipaddress

from pykeep import config
from pykeep.config.model import BfdInstance
from vrrp.bfd import settings_for


def _always(_name: str) -> bool:
    return True


def _load(text: str) -> config.LoadResult:
    return config.load_text(text, "k.conf", interface_exists=_always)


INSTANCE = (
    "vrrp_instance VI {{\n interface eth0\n virtual_router_id 9\n"
    " virtual_ipaddress {{\n  10.0.0.1\n }}\n track_bfd {{\n{refs} }}\n}}\n"
)


def test_defaults_and_values_are_keepalived_s() -> None:
    r = _load(
        "bfd_instance a {\n neighbor_ip 10.0.0.2\n}\n"
        "bfd_instance b {\n neighbour_ip fd00::2\n source_ip fd00::1\n min_rx 20.5\n"
        " min_tx 30\n idle_tx 2000\n multiplier 3\n passive\n max_hops -1\n"
        " weight -20 reverse\n}\n"
    )
    a, b = r.config.bfd_instances
    assert a == BfdInstance(
        name="a",
        neighbor_ip=ipaddress.ip_address("10.0.0.2"),
        ttl=255,
        loc=a.loc,
    )
    assert (a.min_rx_us, a.min_tx_us, a.idle_tx_us, a.multiplier) == (10_000, 10_000, 10**6, 5)
    assert b.ttl == 64  # keepalived's IPv6 default hop limit
    assert (b.min_rx_us, b.min_tx_us, b.idle_tx_us) == (20_500, 30_000, 2_000_000)
    # -1 is 255 in keepalived's uint8_t, then cut to the IPv6 ttl with its error.
    assert b.multiplier == 3 and b.passive and b.max_hops == 64
    assert "BFD instance b: max_hops exceeds ttl/hoplimit - setting to ttl/hoplimit" in [
        d.message for d in r.diagnostics
    ]
    assert (b.weight, b.weight_reverse) == (-20, True)
    s = settings_for(b)
    assert s.ttl == 64 and s.max_hops == 64 and s.min_rx_us == 20_500


def test_bad_values_are_reported_like_keepalived_and_ignored() -> None:
    r = _load(
        "bfd_instance bad {\n min_rx 0\n multiplier 256\n max_hops 300\n}\n"
        "bfd_instance fam {\n neighbor_ip 10.0.0.2\n source_ip fd00::1\n}\n"
        "bfd_instance dup {\n neighbor_ip 10.0.0.9\n}\n"
        "bfd_instance dup2 {\n neighbor_ip 10.0.0.9\n ttl 10\n max_hops 20\n}\n"
    )
    msgs = [d.message for d in r.diagnostics]
    assert any("BFD instance bad min_rx value 0 is not valid" in m for m in msgs)
    assert any("BFD instance bad multiplier value 256 not valid" in m for m in msgs)
    assert any("BFD instance bad max_hops value 300 not valid" in m for m in msgs)
    assert any("BFD instance bad has no neighbor address set, disabling" in m for m in msgs)
    assert any("are not of the same family, disabling instance" in m for m in msgs)
    assert any("dup2 has duplicate neighbor address 10.0.0.9" in m for m in msgs)
    assert [b.name for b in r.config.bfd_instances] == ["dup"]
    assert not any("not supported" in m for m in msgs)


def test_track_bfd_takes_the_instance_weight_unless_given() -> None:
    r = _load(
        "bfd_instance w {\n neighbor_ip 10.0.0.2\n weight 30\n}\n"
        "bfd_instance plain {\n neighbor_ip 10.0.0.3\n}\n"
        "bfd_instance nosession {\n min_tx 20\n}\n"
        "bfd_instance chk {\n neighbor_ip 10.0.0.4\n checker\n}\n"
        + INSTANCE.format(
            refs="  w weight 254\n  plain weight -5 reverse\n  nosession\n  chk\n  nope\n  w\n"
        )
    )
    (vi,) = r.config.vrrp_instances
    got = [(t.name, t.weight, t.reverse) for t in vi.track_bfd]
    # A block the BFD side disables is still tracked by VRRP, as in keepalived.
    assert got[:3] == [("w", 30, False), ("plain", -5, True), ("nosession", 0, False)]
    msgs = [d.message for d in r.diagnostics]
    assert "(VI) track bfd chk not found, ignoring..." in msgs
    assert "(VI) track bfd nope not found, ignoring..." in msgs
    assert "(VI) weight for track bfd w must be in [-253..253] inclusive. Ignoring..." in msgs
    assert "(VI) duplicate track_bfd w - ignoring" in msgs
    assert len(got) == 3
