"""``LookupPlan``: what every lookup of one recipe's feature groups needs, worked out once.

A plan is plain data derived from a tuple of :class:`~fs_augment.recipe.FeatureGroup`: the
distinct entity columns, which column keys each group, and the qualified output names. The
augmenter builds one per fitted recipe and hands it to the adapter on every call, so a served
request does no per-call bookkeeping and nothing is remembered in module-level tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fs_augment.recipe import FeatureGroup

__all__ = ["LookupPlan"]


class LookupPlan:
    """The lookup layout of a tuple of feature groups.

    Parameters
    ----------
    groups : iterable of FeatureGroup
        The groups, in recipe order.

    Attributes
    ----------
    groups : tuple of FeatureGroup
    columns : tuple of str
        The distinct entity columns, in recipe order.
    first_namespace : tuple of str
        The first namespace each entity column keys (for messages).
    requests : tuple
        Per group: ``(namespace, features, entity column, position of the column in columns)``.
    names : tuple of str
        Every ``namespace:feature``, in recipe order.
    widths : tuple of int
        The number of features of each group.

    Examples
    --------
    >>> from fs_augment.recipe import FeatureGroup
    >>> plan = LookupPlan([FeatureGroup("user_demographics", ("age",), "user_id"),
    ...                    FeatureGroup("product_details", ("price", "brand"), "product_id")])
    >>> plan.columns, plan.names
    (('user_id', 'product_id'), ('user_demographics:age', 'product_details:price', 'product_details:brand'))
    """

    __slots__ = ("columns", "first_namespace", "groups", "names", "requests", "widths")

    def __init__(self, groups: Iterable[FeatureGroup]) -> None:
        self.groups: tuple[FeatureGroup, ...] = tuple(groups)
        first: dict[str, str] = {}
        for group in self.groups:
            first.setdefault(group.entity_column, group.namespace)
        self.columns: tuple[str, ...] = tuple(first)
        self.first_namespace: tuple[str, ...] = tuple(first.values())
        self.requests: tuple[tuple[str, tuple[str, ...], str, int], ...] = tuple(
            (g.namespace, tuple(g.features), g.entity_column, self.columns.index(g.entity_column))
            for g in self.groups)
        self.names: tuple[str, ...] = tuple(name for g in self.groups for name in g.qualified_names)
        self.widths: tuple[int, ...] = tuple(len(g.features) for g in self.groups)

    def __repr__(self) -> str:
        return f"LookupPlan({', '.join(g.namespace for g in self.groups)})"

    def __reduce__(self) -> tuple[Any, ...]:  # slots and no __dict__: pickled by its groups
        return (LookupPlan, (self.groups,))
