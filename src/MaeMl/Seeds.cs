namespace MaeMl;

/// <summary>Deterministic seed derivation (SplitMix64), so data order, augmentation and masks are pure functions of
/// (run seed, epoch, position): a resumed run replays exactly what an uninterrupted one would have done.</summary>
internal static class Seeds
{
    /// <summary>A non-negative 63-bit seed that depends on every part and their order (each part folded in and mixed by SplitMix64).</summary>
    public static long Mix(params long[] parts)
    {
        ulong h = 0x9E3779B97F4A7C15UL;
        foreach (var part in parts)
        {
            h ^= (ulong)part + 0x9E3779B97F4A7C15UL + (h << 6) + (h >> 2);
            h = SplitMix(h);
        }
        return (long)(h & 0x7FFFFFFFFFFFFFFFUL);
    }

    /// <summary>A 31-bit seed for <see cref="System.Random"/>.</summary>
    public static int MixInt(params long[] parts) => (int)(Mix(parts) & 0x7FFFFFFF);

    static ulong SplitMix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
