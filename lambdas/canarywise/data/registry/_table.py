"""The registry's DynamoDB plumbing: attribute values, conditional puts, transactions, paged queries.

The only module under `canarywise.data.registry` that calls DynamoDB's write APIs directly; the mixins
(`experiments`, `checks`, `rollbacks`, `service`) build their requests with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from canarywise.data._aws import ClientError, client, error_code
from canarywise.data.models import ExperimentStatus
from canarywise.errors import CanarywiseError

_TRANSACTION_ATTEMPTS = 4


class RegistryError(CanarywiseError):
    """The registry refused a request or holds something it cannot read."""


class ExperimentNotFoundError(RegistryError, LookupError):
    """No experiment with this id."""


# --- DynamoDB attribute values: hand-written because boto3's TypeSerializer rejects floats and returns
# Decimals; our items hold only strings, numbers, booleans and JSON text.
def _value(python: Any) -> dict[str, Any]:
    if isinstance(python, bool):
        return {"BOOL": python}
    if isinstance(python, int | float | Decimal):
        return {"N": str(python)}
    if isinstance(python, str):
        return {"S": python}
    raise TypeError(f"cannot store {type(python).__name__} in the registry: {python!r}")


def _item(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: _value(value) for name, value in attributes.items() if value is not None}


def _python(attribute: Mapping[str, Any]) -> Any:
    (kind, raw), *_ = attribute.items()
    if kind == "N":
        number = Decimal(raw)
        return int(number) if number == number.to_integral_value() and "." not in raw else float(number)
    if kind in {"S", "BOOL"}:
        return raw
    if kind == "NULL":
        return None
    raise RegistryError(f"unexpected DynamoDB attribute type {kind!r}")


def _plain(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {name: _python(attribute) for name, attribute in item.items()}


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class _Table:
    """The table and its client; the base of every registry mixin.

    Parameters
    ----------
    table_name : str
        The DynamoDB table (``REGISTRY_TABLE``).
    boto3_client : optional
        A DynamoDB client (``boto3.client("dynamodb")``); one is created when omitted.
    sleep : callable, optional
        Used between retries of a conflicting transaction; tests pass a no-op.
    """

    def __init__(
        self,
        table_name: str,
        *,
        boto3_client: Any = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.table_name = table_name
        self._client = boto3_client if boto3_client is not None else client("dynamodb")
        self._sleep = sleep or time.sleep

    def get_experiment_status(self, experiment_id: str) -> ExperimentStatus:
        """Only the status (used to explain a refused transaction)."""
        response = self._client.get_item(
            TableName=self.table_name,
            Key=_item({"pk": f"EXP#{experiment_id}", "sk": "META"}),
            ConsistentRead=True,
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
        )
        if "Item" not in response:
            raise ExperimentNotFoundError(f"no experiment {experiment_id!r} in table {self.table_name!r}")
        return ExperimentStatus(_plain(response["Item"])["status"])

    def _put_if_absent(self, attributes: Mapping[str, Any]) -> bool:
        """Write the item unless one with its key exists: True when this call wrote it."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=_item(attributes),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _update(
        self,
        key: Mapping[str, str],
        sets: Mapping[str, Any],
        *,
        removes: Sequence[str] = (),
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """An ``Update`` request for a transaction: SET `sets` (None values skipped), REMOVE `removes`."""
        present = {k: v for k, v in sets.items() if v is not None}
        all_names = {f"#a{i}": name for i, name in enumerate(present)} | dict(names or {})
        expression = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(present)))
        if removes:
            all_names |= {f"#r{i}": name for i, name in enumerate(removes)}
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": _item(key),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": all_names,
            "ExpressionAttributeValues": _item(
                {f":a{i}": value for i, value in enumerate(present.values())} | dict(values or {})
            ),
        }
        if condition:
            request["ConditionExpression"] = condition
        return {"Update": request}

    def _put(
        self, attributes: Mapping[str, Any], *, condition: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """A ``Put`` request for a transaction."""
        request: dict[str, Any] = {"TableName": self.table_name, "Item": _item(attributes)} | extra
        if condition:
            request["ConditionExpression"] = condition
        return {"Put": request}

    def _transact(self, requests: Sequence[Mapping[str, Any]]) -> list[str] | None:
        """Run the requests atomically: None when they were written, else each request's cancellation code
        (``ConditionalCheckFailed`` where a condition did not hold, ``None`` where it did).

        A conflict with a concurrent transaction on the same items is retried (with backoff) before
        `RegistryError`.
        """
        for attempt in range(_TRANSACTION_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=list(requests))
                return None
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                codes = [r.get("Code", "None") for r in exc.response.get("CancellationReasons") or []]
            if "ConditionalCheckFailed" in codes:
                return codes
            # TransactionConflict: another writer was on the same items at the same moment; try again.
            if attempt + 1 == _TRANSACTION_ATTEMPTS:
                raise RegistryError(f"registry transaction kept conflicting: {codes}")
            self._sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _query(self, *, _first_page_only: bool = False, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self._pages(_first_page_only, **kwargs))

    def _pages(self, first_page_only: bool, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs.setdefault("TableName", self.table_name)
        while True:
            response = self._client.query(**kwargs)
            yield from (_plain(item) for item in response.get("Items", []))
            if first_page_only or "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
