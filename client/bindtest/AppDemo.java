// AppDemo is what an Android app does with the bindings of package client: make a key,
// make words, back up, lose the phone, find the vault from the typed words (one of them
// mistyped, and fixed), restore, verify, sign; and the same words as shares. make test runs
// it on this machine's JVM, through the JNI library built from the bindings (jvm.sh),
// against a real vault and real TSM nodes (TestAppDemoOnTheJVM):
//
//   java -Djava.library.path=OUT -cp OUT/classes AppDemo VAULT_URL DIR NODE_URL#ID...
//
// Any call that fails throws, and the JVM exits non-zero.
import client.Client;
import client.Found;
import client.KeyInfo;
import client.Keys;
import client.Phone;
import client.ShareList;
import client.ShareProgress;
import client.Vault;
import client.Words;
import java.io.File;

public final class AppDemo {
    /** Progress is shown to the user: retries and slow steps (called on the calling thread). */
    static final class Log implements client.Progress {
        @Override
        public void step(String message) {
            System.err.println(message);
        }
    }

    static Phone open(String path, Vault vault, String[] args) throws Exception {
        Phone phone = Client.openPhone(path, vault);
        for (int i = 2; i < args.length; i++) {
            String[] node = args[i].split("#", 2); // the provider publishes each node's ID
            phone.addRemoteNode(node[0], node.length > 1 ? node[1] : "");
        }
        return phone;
    }

    // Every call below blocks (disk, network): an app makes them off the UI thread.
    public static void main(String[] args) throws Exception {
        Vault vault = Client.newVault(args[0]);
        vault.setProgress(new Log());
        String dir = args[1];
        vault.check(); // before the user is asked for anything
        Phone phone = open(dir + "/phone.db", vault, args);
        phone.checkNodes();
        String keyID = phone.keyGen("eddsa", "main wallet");
        String savings = phone.keyGenThreshold("eddsa", "savings", 1); // any 2 of the 3 sign
        String eth = phone.keyGen("ecdsa", "eth"); // threshold ECDSA: an Ethereum account
        String address = phone.ethereumAddress(eth, "");

        Words words = Client.newWords(24); // shown once, on the one screen that shows words
        StringBuilder sheet = new StringBuilder(); // what the user writes down
        for (int i = 1; i <= words.count(); i++) {
            sheet.append(i == 5 ? words.word(i) + "x" : words.word(i)).append(' '); // word 5 mistyped later
        }
        Keys keys = words.keys(""); // no passphrase
        byte[] stored = keys.marshal(); // the app keeps these keys (never the words)
        KeyInfo backedUp = phone.backup(keys, keyID);
        phone.backup(keys, savings);
        phone.backup(keys, eth);
        System.out.println("backed up " + keyID + " version " + backedUp.getSequence());
        phone.sign(keyID, "hello");
        phone.close();

        // The phone is lost: its database is gone.
        for (String suffix : new String[] {"", "-wal", "-shm"}) {
            new File(dir + "/phone.db" + suffix).delete();
        }

        // A new phone: the user types the words, one of them wrong.
        Phone fresh = open(dir + "/phone2.db", vault, args);
        Found found = Client.findKeys(vault, sheet.toString().trim(), "");
        if (found.getPosition() != 5) {
            throw new IllegalStateException("word 5 was not the one corrected: " + found.getPosition());
        }
        KeyInfo restored = fresh.restore(found.getKeys(), keyID);
        fresh.restore(found.getKeys(), savings);
        fresh.verify(found.getKeys(), keyID);
        String sig = fresh.sign(keyID, "hello"); // Sign checks it with crypto/ed25519
        System.out.println("restored " + restored.getKeyID() + " epoch " + restored.getEpoch() + " signature " + sig);
        System.out.println("savings signs: " + fresh.sign(savings, "hello").length());
        fresh.restore(found.getKeys(), eth);
        if (!fresh.ethereumAddress(eth, "").equals(address)) {
            throw new IllegalStateException("the restored key has another address");
        }
        String digest = "00".repeat(31) + "01"; // a transaction's Keccak-256, as the app computes it
        String txSig = fresh.signDigest(eth, digest, "m/0/7"); // r || s || v, verified with decred
        String msgSig = fresh.signEthereumMessage(eth, "hello", ""); // personal_sign: v is 27 or 28
        System.out.println("eth " + address + " signs: " + txSig.length() + " v " + msgSig.substring(128));
        try {
            fresh.sign("nosuchkey", "hello");
            throw new IllegalStateException("signing with no key did not fail");
        } catch (Exception e) {
            // One line for the user; the kinds are the package's sentinels (docs/app.md).
            if (!e.getMessage().contains(Client.getErrNoSuchKey().getMessage())) {
                throw e;
            }
        }

        // Shares: "any 2 of these 3 sheets".
        Words more = Client.newWords(12);
        ShareList shares = more.shareList(2, 3);
        ShareProgress one = Client.restoreFromShares(shares.at(0));
        ShareProgress p = Client.restoreFromShares(shares.at(0) + "\n\n" + shares.at(2));
        Keys again = Client.keysFromWords(p.getWords(), "");
        if (one.getMore() != 1 || !again.vaultID().equals(more.keys("").vaultID())) {
            throw new IllegalStateException("shares did not restore the words");
        }
        if (!Client.unmarshalKeys(stored).vaultID().equals(found.getKeys().vaultID())) {
            throw new IllegalStateException("the kept keys are not the words' keys");
        }
        System.out.println("shares restore the words");
        fresh.close();
    }
}
