"""Rate keys on SQLite: one daemon uses a database (the state lock), so it always holds every
key it asks for. The epochs and checkpoints live as long as the Store: a restart starts its
pacing afresh, as it always has on one host."""

from __future__ import annotations

from notifierd.store.base import RateKeyLease


class LocalRateKeys:
    def __init__(self) -> None:
        #: key -> (epoch, held, checkpoint)
        self._keys: dict[str, tuple[int, bool, str | None]] = {}

    def acquire(self, key: str) -> RateKeyLease:
        epoch, held, checkpoint = self._keys.get(key, (0, False, None))
        if not held:
            epoch += 1
            self._keys[key] = (epoch, True, checkpoint)
        return RateKeyLease(epoch, checkpoint)

    def renew(self, key: str, epoch: int, checkpoint: str) -> bool:
        current = self._keys.get(key)
        if current is None or current[0] != epoch or not current[1]:
            return False
        self._keys[key] = (epoch, True, checkpoint)
        return True

    def held(self) -> list[str]:
        return sorted(key for key, (_, held, _) in self._keys.items() if held)

    def release(self, key: str, epoch: int, checkpoint: str) -> None:
        if self.renew(key, epoch, checkpoint):
            self._keys[key] = (epoch, False, checkpoint)
