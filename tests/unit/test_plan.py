import hecate_plan

ORCH = {
    "retcode": 0,
    "data": {
        "master_master": {
            "hecate_|-validate_pillar_|-validate_pillar_|-validated": {
                "result": True, "changes": {}, "__run_num__": 0, "comment": "valid"},
            "salt_|-authentik_|-authentik_|-state": {
                "result": None, "__run_num__": 1,
                "changes": {"out": "highstate", "ret": {"cloud": {
                    "authentik_group_|-g1_|-bionicgpt-superadmin_|-present": {
                        "result": None, "__run_num__": 0,
                        "changes": {"old": None, "new": {"name": "bionicgpt-superadmin"}}},
                    "authentik_oauth2_provider_|-p_|-BionicGPT_|-present": {
                        "result": None, "__run_num__": 1,
                        "changes": {"access_token_validity": {"old": "minutes=5", "new": "hours=1"},
                                    "redirect_uris": {"added": ["x"], "removed": []}}},
                    "authentik_application_|-a_|-bionicgpt_|-present": {
                        "result": True, "__run_num__": 2, "changes": {}},
                }}}},
            "salt_|-caddy_|-caddy_|-state": {
                "result": False, "__run_num__": 2, "comment": "Run failed on minions: cloud",
                "changes": {"out": "highstate", "ret": {"cloud": {
                    "caddy_routes_|-routes_|-hecate_|-managed": {
                        "result": False, "__run_num__": 0, "changes": {},
                        "comment": "route chat.example.com: no upstream"}}}}},
        }
    },
}


def test_rows_in_run_order_with_systems():
    got = hecate_plan.rows(ORCH)
    assert [(r["step"], r["system"], r["object"], r["change"]) for r in got] == [
        ("authentik", "Authentik", "bionicgpt-superadmin", "create"),
        ("authentik", "Authentik", "BionicGPT", "~access_token_validity, redirect_uris"),
        ("caddy", "Caddy", "hecate", "FAILS: route chat.example.com: no upstream"),
    ]


def test_render():
    text = hecate_plan.render(hecate_plan.rows(ORCH), "prod")
    assert text.splitlines()[0] == "Plan for environment 'prod': 2 change(s) in Authentik, Caddy; 1 step(s) would FAIL"
    assert "bionicgpt-superadmin" in text
    assert hecate_plan.render([], "prod").endswith("Everything is converged.")
