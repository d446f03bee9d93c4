"""Who reconciles which pool (pure lease planning)."""

from __future__ import annotations

from celery_scaler.adapters.leases import Lease, plan

POOLS = ["a", "b", "c", "d", "e"]
NOW = 1000.0


def lease(name: str, owner: str, expires: float = NOW + 10, token: int = 1) -> Lease:
    return Lease(name, owner, expires, token)


def test_alone_takes_every_pool() -> None:
    decided = plan("r1", POOLS, {}, replicas=1, now=NOW)
    assert decided.acquire == tuple(POOLS)
    assert (decided.renew, decided.release) == ((), ())


def test_a_second_replica_gets_its_share_as_the_first_hands_back() -> None:
    held = {name: lease(name, "r1") for name in POOLS}
    first = plan("r1", POOLS, held, replicas=2, now=NOW)
    assert (first.renew, first.release) == (("a", "b", "c"), ("d", "e"))
    # Released leases expire at once (expires = 0); the newcomer takes them.
    after = {**held, "d": lease("d", "r1", expires=0), "e": lease("e", "r1", expires=0)}
    second = plan("r2", POOLS, after, replicas=2, now=NOW)
    assert second.acquire == ("d", "e")


def test_live_leases_of_others_are_never_taken() -> None:
    held = {"a": lease("a", "r2"), "b": lease("b", "r2", expires=NOW - 1)}
    decided = plan("r1", ["a", "b"], held, replicas=2, now=NOW)
    assert decided.acquire == ("b",)


def test_my_own_expired_lease_is_taken_anew_not_renewed() -> None:
    # Renewing would keep the old token, which another replica may have fenced off.
    decided = plan("r1", ["a"], {"a": lease("a", "r1", expires=NOW - 1)}, replicas=1, now=NOW)
    assert (decided.renew, decided.acquire) == ((), ("a",))


def test_three_replicas_share_six_pools_evenly() -> None:
    pools = [f"p{i}" for i in range(6)]
    leases: dict[str, Lease] = {}
    for replica in ("r1", "r2", "r3"):
        for name in plan(replica, pools, leases, replicas=3, now=NOW).acquire:
            leases[name] = lease(name, replica)
    owners = [lease.owner for lease in leases.values()]
    assert sorted(owners) == ["r1", "r1", "r2", "r2", "r3", "r3"]
