"""python-nomad with ACLs: bootstrap, policies, tokens, and a token-bearing client."""

import nomad
import nomad.api.exceptions as errors
import pytest

from conftest import Agent


@pytest.fixture(scope="module")
def acl_agent():
    # python-nomad's own CI starts its agent this way.
    started = Agent(["-dev", "-node", "pynomad1", "--acl-enabled"])
    yield started
    started.stop()


def test_acl_flow(acl_agent):
    anonymous = nomad.Nomad(address=acl_agent.address, timeout=10)
    bootstrap = anonymous.acl.generate_bootstrap()
    assert bootstrap["Type"] == "management"
    secret = bootstrap["SecretID"]

    with pytest.raises(errors.URLNotAuthorizedNomadException):
        anonymous.agent.get_agent()

    admin = nomad.Nomad(address=acl_agent.address, token=secret, timeout=10)
    assert admin.agent.get_agent()["config"]["ACL"]["Enabled"] is True
    assert admin.acl.get_self_token()["AccessorID"] == bootstrap["AccessorID"]

    rules = 'agent {\n  policy = "read"\n}\nnode {\n  policy = "read"\n}\n'
    admin.acl.create_policy("readers", {"Name": "readers", "Description": "read only", "Rules": rules})
    assert [p["Name"] for p in admin.acl.get_policies()] == ["readers"]
    assert admin.acl.get_policy("readers")["Rules"] == rules

    token = admin.acl.create_token({"Name": "reader", "Type": "client", "Policies": ["readers"]})
    reader = nomad.Nomad(address=acl_agent.address, token=token["SecretID"], timeout=10)
    assert reader.agent.get_agent()["member"]["Name"] == "pynomad1.global"
    assert reader.agent.get_members()["ServerName"] == "pynomad1"
    with pytest.raises(errors.URLNotAuthorizedNomadException):
        reader.operator.get_configuration()
    with pytest.raises(errors.URLNotAuthorizedNomadException):
        reader.acl.get_tokens()

    accessors = {t["AccessorID"] for t in admin.acl.get_tokens()}
    assert token["AccessorID"] in accessors
    updated = admin.acl.update_token(
        token["AccessorID"], {"Name": "renamed", "Type": "client", "Policies": ["readers"]}
    )
    assert updated["Name"] == "renamed"
    assert admin.acl.get_token(token["AccessorID"])["Name"] == "renamed"

    assert admin.acl.delete_token(token["AccessorID"]) is True
    with pytest.raises(errors.URLNotAuthorizedNomadException):
        reader.agent.get_agent()
    assert admin.acl.delete_policy("readers") is True

    with pytest.raises(errors.BadRequestNomadException):
        anonymous.acl.generate_bootstrap()
