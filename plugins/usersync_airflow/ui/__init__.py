"""The usersync pages in Airflow's UI: the reports app and page, links to run data, the plugin that registers them."""
