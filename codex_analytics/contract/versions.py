"""The contract versions the pipeline speaks, chosen per fact by ``source.contract``.

``2026-06`` is Profile S (``shared/spec/facts.md`` … ``delivery.md``); ``2026-08`` is
Profile J (``shared/spec/profile-j.md``). A fact without ``source.contract`` (or with
``null``) speaks ``2026-06``, so every producer written before Profile J keeps its exact
output. Any other value is refused: the pipeline never guesses a contract.
"""

from __future__ import annotations

from typing import Literal, get_args

ContractId = Literal["2026-06", "2026-08"]
#: Profile S: the June 2026 contract, and the default of a fact that names none.
CONTRACT_S: ContractId = "2026-06"
#: Profile J: upstream ``main`` as of 2026-08-06.
CONTRACT_J: ContractId = "2026-08"
CONTRACTS: tuple[ContractId, ...] = get_args(ContractId)
#: What a fact that names no contract speaks.
DEFAULT_CONTRACT: ContractId = CONTRACT_S
#: What a new client announces unless told otherwise (the contract upstream speaks today).
NEWEST_CONTRACT: ContractId = CONTRACT_J
