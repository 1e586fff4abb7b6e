from governance.views import audit, criteria, guidelines, people, policies, profile, topics

app_name = "governance"
urlpatterns = [
    *criteria.urlpatterns,
    *policies.urlpatterns,
    *guidelines.urlpatterns,
    *audit.urlpatterns,
    *people.urlpatterns,
    *topics.urlpatterns,
    *profile.urlpatterns,
]
