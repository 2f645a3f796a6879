//! No-tool items: greetings, capitals, opposites, translations, definitions, yes/no facts, short
//! writing and advice, each with the fixed reply a good assistant gives, split by subject.

use rand::seq::SliceRandom;

use super::{stream, Split, PLAIN_STREAM};
use crate::problems::Item;

/// One subject of a no-tool category: its question forms and the reply to all of them.
struct Subject {
    questions: Vec<String>,
    answer: String,
    /// Whether "Quick question: ..." and "... Thanks!" forms read naturally.
    wrappable: bool,
}

const GREETINGS: &[(&[&str], &str)] = &[
    (&["Hello!", "Hello there."], "Hello! How can I help you today?"),
    (
        &["Hi, how are you?", "How are you doing today?"],
        "I'm doing well, thank you for asking! How can I help you today?",
    ),
    (&["Good morning!", "Good morning to you."], "Good morning! What can I do for you today?"),
    (&["Good evening!"], "Good evening! How can I help?"),
    (
        &["Thank you!", "Thanks a lot for your help."],
        "You're welcome! Let me know if there is anything else I can help with.",
    ),
    (&["Goodbye!", "Bye, see you later."], "Goodbye! Have a great day."),
    (&["What is your name?", "Who are you?"], "I'm an AI assistant. How can I help you?"),
    (
        &["Can you help me?", "Are you able to help me with something?"],
        "Of course! Tell me what you need and I will do my best to help.",
    ),
    (&["Nice to meet you."], "Nice to meet you too! How can I help you today?"),
    (&["Good night!"], "Good night! Sleep well."),
];

const CAPITALS: &[(&str, &str)] = &[
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"),
    ("China", "Beijing"),
    ("India", "New Delhi"),
    ("Canada", "Ottawa"),
    ("Australia", "Canberra"),
    ("Brazil", "Brasília"),
    ("Argentina", "Buenos Aires"),
    ("Mexico", "Mexico City"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Nigeria", "Abuja"),
    ("Russia", "Moscow"),
    ("the United Kingdom", "London"),
    ("Ireland", "Dublin"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"),
    ("Poland", "Warsaw"),
    ("Greece", "Athens"),
    ("Turkey", "Ankara"),
    ("South Korea", "Seoul"),
    ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"),
    ("Peru", "Lima"),
    ("Chile", "Santiago"),
    ("Colombia", "Bogotá"),
    ("Austria", "Vienna"),
    ("Hungary", "Budapest"),
    ("the Czech Republic", "Prague"),
    ("Belgium", "Brussels"),
    ("Morocco", "Rabat"),
    ("Ghana", "Accra"),
    ("Ethiopia", "Addis Ababa"),
    ("New Zealand", "Wellington"),
    ("Cuba", "Havana"),
    ("Iceland", "Reykjavik"),
    ("the Philippines", "Manila"),
    ("Pakistan", "Islamabad"),
    ("Iran", "Tehran"),
    ("Saudi Arabia", "Riyadh"),
    ("Ukraine", "Kyiv"),
    ("Switzerland", "Bern"),
];

const OPPOSITES: &[(&str, &str)] = &[
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("open", "closed"),
    ("early", "late"),
    ("full", "empty"),
    ("strong", "weak"),
    ("rich", "poor"),
    ("wet", "dry"),
    ("loud", "quiet"),
    ("thick", "thin"),
    ("win", "lose"),
    ("push", "pull"),
    ("day", "night"),
    ("above", "below"),
    ("inside", "outside"),
    ("remember", "forget"),
    ("buy", "sell"),
    ("cheap", "expensive"),
    ("clean", "dirty"),
    ("true", "false"),
    ("ancient", "modern"),
    ("always", "never"),
    ("increase", "decrease"),
    ("accept", "reject"),
    ("friend", "enemy"),
    ("arrive", "depart"),
];

/// (English, language, translation).
const TRANSLATIONS: &[(&str, &str, &str)] = &[
    ("hello", "Spanish", "hola"),
    ("thank you", "Spanish", "gracias"),
    ("water", "Spanish", "agua"),
    ("cat", "Spanish", "gato"),
    ("dog", "Spanish", "perro"),
    ("house", "Spanish", "casa"),
    ("book", "Spanish", "libro"),
    ("red", "Spanish", "rojo"),
    ("hello", "French", "bonjour"),
    ("thank you", "French", "merci"),
    ("water", "French", "eau"),
    ("cat", "French", "chat"),
    ("dog", "French", "chien"),
    ("house", "French", "maison"),
    ("book", "French", "livre"),
    ("goodbye", "French", "au revoir"),
    ("hello", "German", "hallo"),
    ("thank you", "German", "danke"),
    ("water", "German", "Wasser"),
    ("cat", "German", "Katze"),
    ("dog", "German", "Hund"),
    ("house", "German", "Haus"),
    ("book", "German", "Buch"),
    ("good night", "German", "gute Nacht"),
    ("thank you", "Italian", "grazie"),
    ("water", "Italian", "acqua"),
    ("cat", "Italian", "gatto"),
    ("dog", "Italian", "cane"),
    ("book", "Italian", "libro"),
    ("friend", "Italian", "amico"),
];

/// (term with its article, bare term, definition).
const DEFINITIONS: &[(&str, &str, &str)] = &[
    ("photosynthesis", "photosynthesis", "Photosynthesis is the process by which plants, algae and some bacteria use sunlight, water and carbon dioxide to make sugars for energy, releasing oxygen."),
    ("gravity", "gravity", "Gravity is the force by which objects with mass attract one another; on Earth it pulls things toward the ground."),
    ("democracy", "democracy", "Democracy is a system of government in which the people hold power, usually by electing representatives in free elections."),
    ("an atom", "atom", "An atom is the smallest unit of a chemical element, made of a nucleus of protons and neutrons surrounded by electrons."),
    ("a noun", "noun", "A noun is a word that names a person, place, thing or idea, such as \"teacher\", \"city\" or \"happiness\"."),
    ("a verb", "verb", "A verb is a word that describes an action, a state or an occurrence, such as \"run\", \"be\" or \"happen\"."),
    ("a synonym", "synonym", "A synonym is a word that means the same or nearly the same as another word, like \"big\" and \"large\"."),
    ("evaporation", "evaporation", "Evaporation is the process in which a liquid turns into a gas, as when a puddle slowly dries up in the sun."),
    ("a mammal", "mammal", "A mammal is a warm-blooded animal with hair or fur that feeds its young with milk, such as a dog, a whale or a human."),
    ("an ecosystem", "ecosystem", "An ecosystem is a community of living things interacting with each other and with their physical environment."),
    ("a metaphor", "metaphor", "A metaphor is a figure of speech that describes something by saying it is something else, as in \"time is a thief\"."),
    ("inflation", "inflation", "Inflation is the general rise in prices over time, which means the same amount of money buys less than before."),
    ("an algorithm", "algorithm", "An algorithm is a step-by-step set of instructions for solving a problem or carrying out a task."),
    ("a volcano", "volcano", "A volcano is an opening in the Earth's crust through which molten rock, ash and gases escape."),
    ("climate", "climate", "Climate is the typical weather of a region measured over a long period, usually several decades."),
    ("a haiku", "haiku", "A haiku is a short Japanese form of poetry with three lines of five, seven and five syllables."),
    ("friction", "friction", "Friction is the force that resists motion when two surfaces rub against each other."),
    ("an adjective", "adjective", "An adjective is a word that describes a noun, such as \"blue\", \"tall\" or \"happy\"."),
    ("a continent", "continent", "A continent is one of Earth's very large landmasses, such as Africa, Asia or Europe."),
    ("a prime number", "prime number", "A prime number is a whole number greater than one whose only divisors are one and itself, such as two, three, five and seven."),
];

const YES_NO: &[(&str, &str)] = &[
    ("Is the Earth round?", "Yes. The Earth is roughly a sphere, slightly flattened at the poles."),
    ("Is the Sun a star?", "Yes. The Sun is a star: a huge ball of hot gas that makes light and heat by nuclear fusion."),
    ("Can penguins fly?", "No. Penguins are birds, but they cannot fly; they use their wings to swim."),
    ("Is a tomato a fruit?", "Yes. Botanically a tomato is a fruit, because it grows from a flower and holds seeds, although it is usually cooked as a vegetable."),
    ("Is the Moon bigger than the Earth?", "No. The Moon is much smaller than the Earth; its diameter is about a quarter of Earth's."),
    ("Do spiders have six legs?", "No. Spiders have eight legs; insects are the ones with six."),
    ("Is a whale a fish?", "No. A whale is a mammal: it breathes air and feeds its young with milk."),
    ("Does water boil at 100 degrees Celsius at sea level?", "Yes. At sea level, pure water boils at 100 degrees Celsius, which is 212 degrees Fahrenheit."),
    ("Is Mount Everest the highest mountain above sea level?", "Yes. Mount Everest, in the Himalayas, is the highest mountain above sea level."),
    ("Is the Pacific the largest ocean?", "Yes. The Pacific is the largest and deepest of Earth's oceans."),
    ("Do plants need sunlight to grow?", "Yes. Most plants need sunlight, which they use to make their food through photosynthesis."),
    ("Does ice float on water?", "Yes. Ice is less dense than liquid water, so it floats."),
    ("Can humans breathe underwater without equipment?", "No. Humans cannot breathe underwater without equipment such as a scuba tank."),
    ("Is Australia a continent?", "Yes. Australia is both a country and a continent."),
    ("Is the Sahara a desert?", "Yes. The Sahara, in North Africa, is the largest hot desert in the world."),
    ("Are bats birds?", "No. Bats are mammals, and the only mammals that can truly fly."),
    ("Does the Earth go around the Sun?", "Yes. The Earth orbits the Sun, going around it once a year."),
    ("Is gold a metal?", "Yes. Gold is a dense, soft, shiny metal."),
    ("Is Venus closer to the Sun than the Earth is?", "Yes. Venus is the second planet from the Sun, and the Earth is the third."),
    ("Is a dolphin a mammal?", "Yes. Dolphins are mammals: they breathe air and nurse their young."),
    ("Is sound faster than light?", "No. Light travels far faster than sound, which is why you see lightning before you hear thunder."),
];

const WRITING: &[(&[&str], &str)] = &[
    (&["Write a haiku about the sea.", "Could you write a haiku about the sea?"], "Waves fold into foam,\nsalt wind carries gull voices,\nthe tide keeps its time."),
    (&["Write a haiku about autumn.", "Can you write me a haiku about autumn?"], "Red leaves drift and fall,\ncool air smells of wood and rain,\nthe year slows its pace."),
    (&["Write a short thank-you note to a teacher."], "Dear teacher,\nThank you for your patience, encouragement and hard work this year. Your lessons made me curious and confident, and I will remember your class for a long time.\nWith gratitude,\nYour student"),
    (&["Write one sentence describing a sunny morning.", "Describe a sunny morning in one sentence."], "Golden light spilled over the rooftops as birds sang and the warm air promised a bright, easy day."),
    (&["Suggest a name for a pet goldfish.", "What should I name my goldfish?"], "How about \"Bubbles\"? It's cheerful, easy to say, and suits a fish that loves to swim."),
    (&["Write a two-line poem about coffee."], "A warm cup in the quiet dawn,\none sip and all my sleep is gone."),
    (&["Write a short birthday message for a friend.", "Can you write a birthday message for my friend?"], "Happy birthday! I hope your day is full of laughter, good food and the people you love. Here's to a wonderful year ahead!"),
    (&["Give me a title for a story about a lost dog finding its way home."], "How about \"The Long Way Home\"?"),
    (&["Write a polite sentence declining a meeting invitation."], "Thank you for the invitation; unfortunately I am not able to attend the meeting, but I would be glad to catch up another time."),
    (&["Write a slogan for a bakery.", "Come up with a slogan for a bakery."], "\"Fresh from our oven to your table, every morning.\""),
    (&["Write a short apology for being late."], "I'm sorry for being late. I should have planned better, and I appreciate your patience."),
    (&["Describe the colour blue in one sentence."], "Blue is the cool, calm colour of a clear sky and a deep ocean."),
];

const ADVICE: &[(&[&str], &str)] = &[
    (&["How can I sleep better?", "Any tips for sleeping better?"], "Keep a regular sleep schedule, avoid screens and caffeine in the hours before bed, keep your bedroom dark, cool and quiet, and get some daylight and exercise during the day."),
    (&["How do I stay focused while studying?"], "Put your phone away, work in short blocks with short breaks in between, set a clear goal for each session, and study somewhere quiet."),
    (&["Any tips for a job interview?", "How should I prepare for a job interview?"], "Research the company, prepare short examples of your past work, practise answering common questions out loud, arrive a little early, and have a couple of questions ready to ask."),
    (&["How can I drink more water during the day?"], "Carry a refillable bottle, drink a glass with each meal, set reminders on your phone, and add a slice of lemon if you like some flavour."),
    (&["How do I make friends in a new city?"], "Join clubs, classes or sports groups around your interests, say yes to invitations, volunteer, and keep in touch with the people you meet by suggesting a coffee or a walk."),
    (&["How can I reduce stress?", "What are some ways to feel less stressed?"], "Take regular breaks, get enough sleep, move your body every day, talk to people you trust, and try slow breathing or a short walk when you feel tense."),
    (&["How can I save money on groceries?"], "Plan your meals, shop with a list, compare unit prices, choose store brands, cook at home more often, and avoid shopping when you are hungry."),
    (&["How do I start running?", "I want to start running. Any advice?"], "Start slowly with a mix of walking and jogging a few times a week, wear comfortable shoes, build up your time gradually, and rest when your body needs it."),
    (&["How can I learn a new language faster?"], "Practise a little every day, learn the most common words first, listen to podcasts or shows in the language, and speak with native speakers as early as you can."),
    (&["How do I keep a houseplant alive?"], "Give it the light its species likes, water it only when the top of the soil is dry, use a pot with drainage holes, and keep it away from cold draughts."),
];

/// Every no-tool subject, category by category, each tagged with its split: every fourth subject
/// of a category (the second, sixth, ...) is eval.
fn plain_subjects() -> Vec<(Split, Subject)> {
    let mut categories: Vec<Vec<Subject>> = Vec::new();
    let fixed = |rows: &[(&[&str], &str)], wrappable: bool| -> Vec<Subject> {
        rows.iter()
            .map(|(qs, a)| Subject {
                questions: qs.iter().map(|q| q.to_string()).collect(),
                answer: a.to_string(),
                wrappable,
            })
            .collect()
    };
    categories.push(fixed(GREETINGS, false));
    categories.push(fixed(WRITING, false));
    categories.push(fixed(ADVICE, false));
    categories.push(
        CAPITALS
            .iter()
            .map(|(country, capital)| Subject {
                questions: vec![
                    format!("What is the capital of {country}?"),
                    format!("What's the capital city of {country}?"),
                    format!("Which city is the capital of {country}?"),
                ],
                answer: format!("The capital of {country} is {capital}."),
                wrappable: true,
            })
            .collect(),
    );
    categories.push(
        OPPOSITES
            .iter()
            .map(|(w, o)| Subject {
                questions: vec![
                    format!("What is the opposite of \"{w}\"?"),
                    format!("What's the opposite of {w}?"),
                    format!("Give me an antonym of the word \"{w}\"."),
                ],
                answer: format!("The opposite of \"{w}\" is \"{o}\"."),
                wrappable: true,
            })
            .collect(),
    );
    categories.push(
        TRANSLATIONS
            .iter()
            .map(|(w, lang, t)| Subject {
                questions: vec![
                    format!("How do you say \"{w}\" in {lang}?"),
                    format!("Translate \"{w}\" into {lang}."),
                    format!("What is \"{w}\" in {lang}?"),
                ],
                answer: format!("\"{}{}\" in {lang} is \"{t}\".", w[..1].to_uppercase(), &w[1..]),
                wrappable: true,
            })
            .collect(),
    );
    categories.push(
        DEFINITIONS
            .iter()
            .map(|(term, bare, definition)| Subject {
                questions: vec![
                    format!("What is {term}?"),
                    format!("Define {bare}."),
                    format!("What does the word \"{bare}\" mean?"),
                    format!("Can you explain what {term} is?"),
                ],
                answer: definition.to_string(),
                wrappable: true,
            })
            .collect(),
    );
    categories.push(
        YES_NO
            .iter()
            .map(|(q, a)| Subject { questions: vec![q.to_string()], answer: a.to_string(), wrappable: true })
            .collect(),
    );
    categories
        .into_iter()
        .flat_map(|subjects| {
            subjects.into_iter().enumerate().map(|(i, s)| (if i % 4 == 1 { Split::Eval } else { Split::Train }, s))
        })
        .collect()
}

/// Every (question, reply) of `split`: each subject's forms, and the wrapped ones where natural.
fn plain_pool(split: Split) -> Vec<Item> {
    let mut pool = Vec::new();
    for (s, subject) in plain_subjects() {
        if s != split {
            continue;
        }
        for q in &subject.questions {
            let mut forms = vec![q.clone()];
            if subject.wrappable {
                forms.push(format!("Quick question: {q}"));
                forms.push(format!("{q} Thanks!"));
            }
            pool.extend(forms.into_iter().map(|question| Item { question, answer: subject.answer.clone() }));
        }
    }
    pool
}

/// `n` questions of `split` that need no tool, each with the reply a good assistant gives. The
/// pool is dealt in shuffled passes, so no question repeats until all of them have been used.
pub fn no_tool_items(split: Split, seed: u64, n: usize) -> Vec<Item> {
    let pool = plain_pool(split);
    let mut rng = stream(split, seed, PLAIN_STREAM);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut pass = pool.clone();
        pass.shuffle(&mut rng);
        out.extend(pass.into_iter().take(n - out.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn no_tool_subjects_are_distinct_and_split() {
        let subjects = plain_subjects();
        let eval = subjects.iter().filter(|(s, _)| *s == Split::Eval).count();
        assert!(eval * 5 > subjects.len() && eval * 3 < subjects.len(), "{eval} of {}", subjects.len());
        let mut seen = HashSet::new();
        for (_, s) in &subjects {
            assert!(!s.answer.is_empty());
            for q in &s.questions {
                assert!(seen.insert(q.clone()), "asked twice: {q}");
            }
        }
        assert!(plain_pool(Split::Eval).len() >= 100);
    }
}
