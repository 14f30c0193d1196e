/* Composition root (placeholder until the node core lands in this change). */
int main(void)
{
    return 0;
}
