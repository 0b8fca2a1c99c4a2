"""docs/scheduling.md's Airflow DAG compiles (Airflow itself is not installed here)."""

from __future__ import annotations

import ast
import pathlib
import py_compile

ROOT = pathlib.Path(__file__).resolve().parents[3]
DAG = ROOT / "dataflow" / "airflow_dag.py"


def test_airflow_dag_compiles_and_launches_the_flex_template(tmp_path):
    py_compile.compile(str(DAG), cfile=str(tmp_path / "dag.pyc"), doraise=True)
    tree = ast.parse(DAG.read_text(encoding="utf-8"))
    calls = {n.func.id for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"DAG", "DataflowStartFlexTemplateOperator"} <= calls
    docs = (ROOT / "docs" / "scheduling.md").read_text(encoding="utf-8")
    assert "dataflow/airflow_dag.py" in docs and "flexTemplates:launch" in docs
