"""The DAG's wiring: the DAG factory, each task's callable, XCom, assets, the report and alarm tasks, run storage."""
