# Rate-limit refusals counted per clock hour and limit (issue 13): refused requests write no
# Generation row, so the dashboard reads them from here.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0007_caller_limits'),
    ]

    operations = [
        migrations.CreateModel(
            name='RefusalTally',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField(help_text='Start of the clock hour.')),
                ('limit_name', models.CharField(help_text='requests_per_minute, concurrent_streams or tokens_per_day.', max_length=32)),
                ('refused', models.BigIntegerField(default=0)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('hour', 'limit_name'), name='refusal_tally_hour_limit_uniq')],
            },
        ),
    ]
