"""Reference checks and the chalice#2079 fix over small templates (infra.template)."""

from __future__ import annotations

import doctest
from typing import Any

import infra.template
from infra.template import dangling_references, fix_log_group_names, in_dependency_order


def names(template: dict[str, Any]) -> list[str]:
    return [f"{d.kind} {d.name}" for d in dangling_references(template)]


def test_doctest() -> None:
    assert doctest.testmod(infra.template).failed == 0


def test_every_kind_of_reference_is_checked() -> None:
    template = {
        "Parameters": {"Stage": {"Type": "String"}},
        "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}},
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue"},
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "DependsOn": ["Queue", "Missing1"],
                "Properties": {
                    "A": {"Ref": "Missing2"},
                    "B": {"Fn::GetAtt": ["Missing3", "Arn"]},
                    "C": {"Fn::GetAtt": "Queue.Arn"},
                    "D": {"Fn::Sub": "${AWS::Region} ${Queue.Arn} ${!Literal} ${Missing4}"},
                    "E": {"Fn::Sub": ["${Local} ${Stage}", {"Local": {"Ref": "Missing5"}}]},
                    "F": {"Fn::If": ["IsProd", {"Ref": "Queue"}, {"Ref": "AWS::NoValue"}]},
                    "G": {"Fn::If": ["MissingCondition", 1, 2]},
                    "H": {"Fn::Sub": "${Stage.Attr}"},
                },
            },
        },
        "Outputs": {"Out": {"Value": {"Ref": "Missing6"}}},
    }
    assert names(template) == [
        "DependsOn Missing1",
        "Ref Missing2",
        "Fn::GetAtt Missing3",
        "Fn::Sub Missing4",
        "Ref Missing5",
        "Fn::If MissingCondition",
        "Fn::Sub Stage.Attr",  # a parameter has no attributes
        "Ref Missing6",
    ]


def chalice_log_group(function: str, named: str) -> dict[str, Any]:
    return {
        "Resources": {
            function: {"Type": "AWS::Serverless::Function"},
            f"{named}LogGroup": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": {"Fn::Sub": f"/aws/lambda/${{{named}}}"}},
            },
        }
    }


def test_the_log_group_fix_changes_only_a_dangling_name() -> None:
    broken = chalice_log_group("APIHandler", "ApiHandler")
    assert fix_log_group_names(broken) == [
        "ApiHandlerLogGroup: /aws/lambda/${ApiHandler} -> /aws/lambda/${APIHandler}"
    ]
    assert dangling_references(broken) == []
    # Once Chalice names the function right, nothing is changed.
    correct = chalice_log_group("APIHandler", "APIHandler")
    assert fix_log_group_names(correct) == []
    # No function to point at: left alone for the reference check to report.
    orphan = chalice_log_group("Other", "ApiHandler")
    assert fix_log_group_names(orphan) == []
    assert names(orphan) == ["Fn::Sub ApiHandler"]


def test_dependency_order_puts_what_is_referenced_first() -> None:
    template = {
        "Resources": {
            "Mapping": {"Properties": {"Function": {"Ref": "Fn"}}},
            "Fn": {"DependsOn": "Queue", "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
            "Queue": {},
            "Role": {},
        }
    }
    order = list(in_dependency_order(template)["Resources"])
    assert order.index("Queue") < order.index("Fn") < order.index("Mapping")
    assert order.index("Role") < order.index("Fn")
