"""What a receiving vendor pulled of each notification the simulator sent, against what the notification offered
(SPEC §3 steps 4-6): the evidence the session page and the admin API show next to each sent notification.

Pulls are tied to their notification by the proxy, which knows the token's notification when it judges the pull
(Store.pulls_by_notification); a pull of the simulator not recorded by a proxy is not counted.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit

from speeltuin.records import Notification, NotificationOrigin, Tag
from speeltuin.store import PullMade, Store
from validators.query import same_request
from validators.rules.bearer import check_search_offered
from validators.task_reader import offered_targets


@dataclass(frozen=True)
class PullEvidence:
    """`offered`: the relative queries and reads the notification offers (its Workflow Task's included); `pulled`:
    those pulled with an answer 200; `documents`: Binary reads answered 200; `not_offered`: searches of a resource
    type it does not offer (BEAR-008); `requests`: every pull made with its tokens, `refused` of them answered with
    an error status."""

    offered: tuple[str, ...]
    pulled: tuple[str, ...]
    documents: int
    not_offered: tuple[str, ...]
    requests: int
    refused: int

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(path for path in self.offered if path not in self.pulled)

    def summary(self) -> str:
        """One line, e.g. "29 of 29 offered pulled, 1 document; 2 searches not offered"."""
        if not self.requests:
            return "not pulled yet"
        documents = f"{self.documents} document{'' if self.documents == 1 else 's'}"
        line = f"{len(self.pulled)} of {len(self.offered)} offered pulled, {documents}"
        extra = [f"{len(self.not_offered)} search{'' if len(self.not_offered) == 1 else 'es'} not offered"
                 if self.not_offered else "", f"{self.refused} refused" if self.refused else ""]
        return "; ".join([line, *[e for e in extra if e]])

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "missing": list(self.missing), "summary": self.summary()}


def evidence_of_sent(store: Store, session_id: str, notifications: Sequence[Notification]) -> dict[str, PullEvidence]:
    """The evidence of each notification the simulator sent among `notifications` (the session's, as read), by id;
    the session's pulls are read only when it sent any."""
    sent = [n for n in notifications if n.origin == NotificationOrigin.SENT]
    pulls = store.pulls_by_notification(session_id) if sent else {}
    return {n.id: pull_evidence(n, pulls.get(n.id, [])) for n in sent}


def pull_evidence(notification: Notification, pulls: Sequence[PullMade]) -> PullEvidence:
    """The evidence of one sent notification from the pulls made with its tokens (oldest first)."""
    offered = offered_targets(notification.task, notification.workflow_task)
    answered = [p for p in pulls if p.status == 200]
    pulled = tuple(dict.fromkeys(path for _kind, path in offered if any(same_request(p.url, path) for p in answered)))
    not_offered = dict.fromkeys(_relative(p.url) for p in pulls
                                if p.tag == Tag.SEARCH and check_search_offered(p.url, offered))
    return PullEvidence(
        offered=tuple(dict.fromkeys(path for _kind, path in offered)), pulled=pulled,
        documents=sum(1 for p in answered if p.tag == Tag.BINARY), not_offered=tuple(not_offered),
        requests=len(pulls), refused=sum(1 for p in pulls if (p.status or 0) >= 400))


def _relative(url: str) -> str:
    """A pull's URL after the FHIR base (`Type?params`), as a Task would write it."""
    parts = urlsplit(url)
    path = parts.path.partition("/fhir/")[2] or parts.path.rsplit("/", 1)[-1]
    return f"{path}?{parts.query}" if parts.query else path
